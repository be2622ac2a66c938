// SMPP 3.4 SMSC simulator for baton's SMS tests (tests/sms/README.md is its specification): an
// smpp.createServer() from the npm `smpp` package on 127.0.0.1:--port and an HTTP/JSON control API
// on 127.0.0.1:--control. Invariant: every request from a client counts against --window while it
// is unanswered (all requests are answered after submit_delay_ms, so a client that does not wait
// is caught and counted in `violations`), and the SMSC itself is stop-and-wait: at most one
// deliver_sm (MO or receipt) or enquire_link is unanswered at any time.
//
// Message bodies are handled as raw octets: the package's own short_message/message_payload
// filters are removed because its automatic encoder labels GSM 03.38 text data_coding 1 (IA5) and
// decodes data_coding 1 as GSM; here data_coding 0 is GSM 03.38 unpacked (one septet per octet,
// 3GPP TS 23.038 section 6.2.1 with the extension table of 6.2.1.1), 3 Latin-1, 8 UCS-2 (UTF-16BE),
// 1 IA5/ASCII (reported as coding "ascii"), 2 and 4 binary (text is hex).
//
// Beyond README.md: an MO answered with the permanent ESME_RX_P_APPN (0x65) is dropped with state
// "failed"; a deliver_sm unanswered for 30 s is an error and is retried; a newer receiver or
// transceiver bind takes over the delivery of MO and receipts (an unanswered deliver_sm on the
// older session is sent again); GET /state also has "pending_concat" (incomplete concatenations).
// Submit addresses with TON 1 (international) are reported with a leading '+'.

import http from 'node:http';
import process from 'node:process';
import smpp from 'smpp';

// ---------------------------------------------------------------------------------------------
// Command line

function parseArgs(argv) {
	const a = { port: 0, control: 0, systemId: null, password: null, window: 1, enquireMs: 0 };
	for (let i = 0; i < argv.length; i++) {
		const k = argv[i];
		const v = argv[i + 1];
		switch (k) {
		case '--port': a.port = Number(v); i++; break;
		case '--control': a.control = Number(v); i++; break;
		case '--system-id': a.systemId = v; i++; break;
		case '--password': a.password = v; i++; break;
		case '--window': a.window = Number(v); i++; break;
		case '--enquire-ms': a.enquireMs = Number(v); i++; break;
		default:
			process.stderr.write(`smsc-smpp: unknown argument ${k}\n`);
			process.exit(2);
		}
	}
	if (!a.port || !a.control || !(a.window >= 1)) {
		process.stderr.write('usage: smsc-smpp.mjs --port P --control C [--system-id ID ' +
			'--password PW] [--window N] [--enquire-ms N]\n');
		process.exit(2);
	}
	return a;
}

const args = parseArgs(process.argv.slice(2));

function log(msg) {
	process.stderr.write(`${new Date().toISOString()} smsc-smpp: ${msg}\n`);
}

// ---------------------------------------------------------------------------------------------
// SMPP constants (SMPP 3.4 section 5.1.3 command_status, 5.2.12 esm_class, 5.2.19 data_coding)

const ST = {
	OK: 0x00, RINVMSGLEN: 0x01, RINVCMDID: 0x03, RINVBNDSTS: 0x04, RALYBND: 0x05,
	RSYSERR: 0x08, RBINDFAIL: 0x0d, RMSGQFUL: 0x14, RSUBMITFAIL: 0x45, RTHROTTLED: 0x58,
	RX_T_APPN: 0x64, RX_P_APPN: 0x65,
};
const ESM_RECEIPT = 0x04;
const ESM_UDHI = 0x40;
const MSG_STATE_DELIVERED = 2;
const MSG_STATE_UNDELIVERABLE = 5;
const DELIVER_TIMEOUT_MS = 30000; // an unanswered deliver_sm is an error, then retried

// Raw octets in and out: without these filters the package decodes bodies itself (see header).
delete smpp.commands.submit_sm.params.short_message.filter;
delete smpp.commands.deliver_sm.params.short_message.filter;
delete smpp.tlvs.message_payload.filter;

// ---------------------------------------------------------------------------------------------
// GSM 03.38 (3GPP TS 23.038 6.2.1 default alphabet, 6.2.1.1 extension table)

const GSM_BASIC =
	'@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
	'¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXT = new Map([
	[0x0a, '\f'], [0x14, '^'], [0x28, '{'], [0x29, '}'], [0x2f, '\\'],
	[0x3c, '['], [0x3d, '~'], [0x3e, ']'], [0x40, '|'], [0x65, '€'],
]);
if (GSM_BASIC.length !== 128) {
	throw new Error(`GSM table has ${GSM_BASIC.length} entries`);
}
const GSM_ENC = new Map();
for (let i = 0; i < 128; i++) {
	if (i !== 0x1b) {
		GSM_ENC.set(GSM_BASIC[i], [i]);
	}
}
for (const [code, ch] of GSM_EXT) {
	GSM_ENC.set(ch, [0x1b, code]);
}

// Decodes unpacked GSM septets; problems are appended to errs. An escape to an undefined
// extension code shows the default-table character (23.038 6.2.1.1 note).
function gsmDecode(buf, errs) {
	let out = '';
	for (let i = 0; i < buf.length; i++) {
		const b = buf[i];
		if (b > 0x7f) {
			errs.push(`GSM text has octet 0x${b.toString(16)} > 0x7f (packed or not GSM?)`);
			out += '?';
		} else if (b === 0x1b) {
			if (i + 1 >= buf.length) {
				errs.push('GSM text ends in an escape (0x1b)');
				break;
			}
			const e = buf[++i];
			if (GSM_EXT.has(e)) {
				out += GSM_EXT.get(e);
			} else {
				errs.push(`GSM escape to undefined extension code 0x${e.toString(16)}`);
				out += e <= 0x7f && e !== 0x1b ? GSM_BASIC[e] : ' ';
			}
		} else {
			out += GSM_BASIC[b];
		}
	}
	return out;
}

// Text as an array of septet units (1 or 2 septets each), or null if a character has none.
function gsmUnits(text) {
	const units = [];
	for (const ch of text) {
		const u = GSM_ENC.get(ch);
		if (!u) {
			return null;
		}
		units.push(u);
	}
	return units;
}

// ---------------------------------------------------------------------------------------------
// Codings

function codingOf(dc) {
	if ((dc & 0xf0) === 0xf0) { // 23.038 section 4, "data coding/message class"
		return dc & 0x04 ? 'binary' : 'gsm';
	}
	switch (dc) {
	case 0x00: return 'gsm';
	case 0x01: return 'ascii';
	case 0x03: return 'latin1';
	case 0x08: return 'ucs2';
	case 0x02: case 0x04: return 'binary';
	default: return null;
	}
}

function decodeBody(coding, buf, errs) {
	switch (coding) {
	case 'gsm': return gsmDecode(buf, errs);
	case 'ascii':
		if (buf.some((b) => b > 0x7f)) {
			errs.push('IA5 (data_coding 1) text has octets > 0x7f');
		}
		return buf.toString('latin1');
	case 'latin1': return buf.toString('latin1');
	case 'ucs2':
		if (buf.length % 2) {
			errs.push('UCS-2 text has an odd number of octets');
		}
		return Buffer.from(buf.subarray(0, buf.length & ~1)).swap16().toString('utf16le');
	default: return buf.toString('hex');
	}
}

// ---------------------------------------------------------------------------------------------
// State

const cfg = {
	submit_delay_ms: 20,
	receipts: 'delivered',
	receipt_delay_ms: 50,
	reject: {},
	throttle_next: 0,
	mo_retry_ms: 500,
	refuse_bind: false,
};

let st;          // counters and records that /reset forgets
let epoch = 0;   // bumped by /reset: timers of an earlier epoch do nothing
let concat;      // pending concatenations: key -> {total, parts: Map(seq -> {body, msgid, dc})}
let outq;        // outbound deliver_sm items: {kind: 'mo'|'receipt', ...}
let current;     // the one unanswered SMSC request (deliver_sm), or null
let retryTimer;
let nextMsgId = 1;
let moRef = 0;
const conns = new Set();
let connSeq = 0;

function resetState() {
	st = {
		binds: 0, violations: 0, max_outstanding: 0, submits: [], submit_pdus: 0, mo: [],
		enquire: 0, errors: [],
	};
	concat = new Map();
	outq = [];
	if (current) {
		clearTimeout(current.timer);
	}
	current = null;
	if (retryTimer) {
		clearTimeout(retryTimer);
		retryTimer = null;
	}
	epoch++;
}
resetState();

function recordError(msg) {
	log(`error: ${msg}`);
	if (st.errors.length < 1000) {
		st.errors.push(msg);
	}
}

function newMsgId() {
	return String(nextMsgId++).padStart(10, '0');
}

// International numbers (TON 1) are reported in E.164 form with a '+' (as /mo takes them).
function addrOut(ton, addr) {
	return ton === 1 && addr && !addr.startsWith('+') ? `+${addr}` : addr;
}

function addrIn(s) {
	if (s.startsWith('+')) {
		return { ton: 1, npi: 1, addr: s.slice(1) };
	}
	if (/[^0-9]/.test(s)) {
		return { ton: 5, npi: 0, addr: s }; // alphanumeric
	}
	return { ton: 0, npi: 1, addr: s };
}

function stamp(d) {
	const p = (n) => String(n).padStart(2, '0');
	return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) + p(d.getUTCDate()) +
		p(d.getUTCHours()) + p(d.getUTCMinutes());
}

function sessionSend(conn, pdu, cb) {
	if (conn.closed) {
		return;
	}
	conn.session.send(pdu, cb);
}

// ---------------------------------------------------------------------------------------------
// Requests from the client

function onRequest(conn, pdu) {
	if (conn.outstanding >= args.window) {
		st.violations++;
		recordError(`window violation: ${pdu.command} seq ${pdu.sequence_number} arrived with ` +
			`${conn.outstanding} request(s) unanswered (window ${args.window})`);
	}
	conn.outstanding++;
	st.max_outstanding = Math.max(st.max_outstanding, conn.outstanding);

	let resp;
	let after = null;
	try {
		[resp, after] = decide(conn, pdu);
	} catch (e) { // a bug here must not kill the simulator
		recordError(`internal error on ${pdu.command}: ${e.stack}`);
		resp = new smpp.PDU('generic_nack', {
			sequence_number: pdu.sequence_number, command_status: ST.RSYSERR,
		});
		after = null;
	}
	setTimeout(() => {
		conn.outstanding--;
		if (conn.closed) {
			return;
		}
		conn.session.send(resp);
		if (after) {
			after();
		}
	}, cfg.submit_delay_ms);
}

// The answer to one request and what to do once it is sent: [response PDU, function or null].
function decide(conn, pdu) {
	let resp;
	let after = null;
	switch (pdu.command) {
	case 'bind_transceiver':
	case 'bind_transmitter':
	case 'bind_receiver': {
		const mode = pdu.command.slice(5);
		if (conn.bound || conn.binding) {
			resp = pdu.response({ command_status: ST.RALYBND });
		} else if (cfg.refuse_bind || (args.systemId !== null &&
			(pdu.system_id !== args.systemId || pdu.password !== (args.password ?? '')))) {
			log(`conn ${conn.id}: bind refused (system_id ${JSON.stringify(pdu.system_id)})`);
			resp = pdu.response({ command_status: ST.RBINDFAIL });
			after = () => conn.session.close();
		} else {
			resp = pdu.response({ system_id: 'baton-smsc-sim', sc_interface_version: 0x34 });
			conn.binding = true;
			after = () => {
				conn.binding = false;
				conn.bound = mode;
				conn.boundAt = ++connSeq;
				st.binds++;
				log(`conn ${conn.id}: bound as ${mode}`);
				if (mode !== 'transmitter' && current && current.conn !== conn) {
					requeueCurrent('a newer session bound');
				}
				pump();
			};
		}
		break;
	}
	case 'submit_sm': {
		st.submit_pdus++;
		const r = onSubmit(conn, pdu);
		resp = r.pdu;
		after = r.ack || null;
		break;
	}
	case 'enquire_link':
		st.enquire++;
		resp = pdu.response();
		break;
	case 'unbind':
		resp = pdu.response();
		conn.bound = null;
		if (current && current.conn === conn) {
			requeueCurrent('client unbound');
		}
		after = () => conn.session.close();
		break;
	default:
		// Unknown command_id (the package names it 'unknown') or one this SMSC does not take.
		recordError(`unsupported request ${pdu.command} (command_id 0x` +
			`${pdu.command_id.toString(16).padStart(8, '0')}): generic_nack`);
		resp = new smpp.PDU('generic_nack', {
			sequence_number: pdu.sequence_number, command_status: ST.RINVCMDID,
		});
	}
	return [resp, after];
}

// Decides the answer to one submit_sm; returns {pdu, ack} where ack runs once it is sent.
function onSubmit(conn, pdu) {
	const fail = (status, why) => {
		if (why) {
			recordError(`submit_sm seq ${pdu.sequence_number}: ${why}`);
		}
		return { pdu: pdu.response({ command_status: status }) };
	};
	if (conn.bound !== 'transceiver' && conn.bound !== 'transmitter') {
		return fail(ST.RINVBNDSTS, `not bound for submit (${conn.bound})`);
	}
	const to = addrOut(pdu.dest_addr_ton, pdu.destination_addr);
	const from = addrOut(pdu.source_addr_ton, pdu.source_addr);
	if (cfg.throttle_next > 0) {
		cfg.throttle_next--;
		return fail(ST.RTHROTTLED);
	}
	const rej = cfg.reject[pdu.destination_addr] ?? cfg.reject[to];
	if (rej !== undefined) {
		return fail(Number(rej));
	}

	let payload = pdu.short_message || Buffer.alloc(0);
	if (pdu.message_payload) {
		if (payload.length) {
			return fail(ST.RSUBMITFAIL, 'both short_message and message_payload present');
		}
		payload = pdu.message_payload;
	}
	const dc = pdu.data_coding || 0;
	const coding = codingOf(dc);
	if (!coding) {
		recordError(`submit_sm: unknown data_coding 0x${dc.toString(16)}, taken as binary`);
	}
	const cod = coding || 'binary';

	// User data header (3GPP TS 23.040 9.2.3.24): IEI 0x00 (8-bit reference), 0x08 (16-bit).
	let body = payload;
	let udhLen = 0;
	let cat = null;
	if (pdu.esm_class & ESM_UDHI) {
		if (!payload.length || payload[0] + 1 > payload.length) {
			return fail(ST.RINVMSGLEN, 'UDHI set but the UDH does not fit');
		}
		udhLen = payload[0] + 1;
		body = payload.subarray(udhLen);
		for (let i = 1; i + 1 < udhLen;) {
			const iei = payload[i];
			const len = payload[i + 1];
			const v = payload.subarray(i + 2, i + 2 + len);
			if (i + 2 + len > udhLen) {
				return fail(ST.RINVMSGLEN, 'UDH information element overruns the UDH');
			}
			if (iei === 0x00 && len === 3) {
				cat = { kind: 'udh8', ref: v[0], total: v[1], seq: v[2] };
			} else if (iei === 0x08 && len === 4) {
				cat = { kind: 'udh16', ref: v.readUInt16BE(0), total: v[2], seq: v[3] };
			}
			i += 2 + len;
		}
	}
	if (pdu.sar_msg_ref_num !== undefined || pdu.sar_total_segments !== undefined ||
		pdu.sar_segment_seqnum !== undefined) {
		if (cat) {
			recordError('submit_sm has both a concatenation UDH and sar_* TLVs');
		}
		if (pdu.sar_msg_ref_num === undefined || pdu.sar_total_segments === undefined ||
			pdu.sar_segment_seqnum === undefined) {
			return fail(ST.RSUBMITFAIL, 'incomplete sar_* TLVs');
		}
		cat = { kind: 'sar', ref: pdu.sar_msg_ref_num, total: pdu.sar_total_segments,
			seq: pdu.sar_segment_seqnum };
	}
	if (cat && (cat.total < 1 || cat.seq < 1 || cat.seq > cat.total)) {
		return fail(ST.RSUBMITFAIL, `bad concatenation numbers ${cat.seq}/${cat.total}`);
	}

	// One SMS: 140 octets of user data (23.040 9.2.3.16); septets count 7/8 of an octet.
	if (!pdu.message_payload) {
		const octets = cod === 'gsm' ? Math.ceil((udhLen * 8 + body.length * 7) / 8)
			: payload.length;
		if (octets > 140) {
			return fail(ST.RINVMSGLEN, `${cod} user data of ${octets} octets > 140`);
		}
	}

	const msgid = newMsgId();
	const errs = [];
	const partText = decodeBody(cod, body, errs);
	const dlr = (pdu.registered_delivery & 0x03) === 1 || (pdu.registered_delivery & 0x03) === 2;
	const partInfo = { body, msgid, dc, cod };

	if (!cat || cat.total === 1) {
		for (const e of errs) {
			recordError(`submit_sm ${msgid}: ${e}`);
		}
		st.submits.push({
			n: st.submits.length + 1, from, to, text: partText, coding: cod, parts: 1, dlr,
			msgids: [msgid],
		});
	} else {
		const key = `${cat.kind}|${from}|${to}|${cat.ref}|${cat.total}`;
		let c = concat.get(key);
		if (!c) {
			c = { from, to, ref: cat.ref, total: cat.total, dlr: false, parts: new Map() };
			concat.set(key, c);
		}
		if (c.parts.has(cat.seq)) {
			recordError(`concatenated SMS ref ${cat.ref}: part ${cat.seq} received twice`);
		}
		c.parts.set(cat.seq, partInfo);
		c.dlr = c.dlr || dlr;
		if (c.parts.size === c.total) {
			concat.delete(key);
			const ordered = [...c.parts.keys()].sort((x, y) => x - y).map((k) => c.parts.get(k));
			const first = ordered[0];
			if (ordered.some((p) => p.dc !== first.dc)) {
				recordError(`concatenated SMS ref ${cat.ref}: parts differ in data_coding`);
			}
			const joinErrs = [];
			const text = decodeBody(first.cod, Buffer.concat(ordered.map((p) => p.body)),
				joinErrs);
			for (const e of joinErrs) {
				recordError(`concatenated SMS ref ${cat.ref}: ${e}`);
			}
			st.submits.push({
				n: st.submits.length + 1, from, to, text, coding: first.cod,
				parts: c.total, dlr: c.dlr, msgids: ordered.map((p) => p.msgid),
			});
		}
	}
	const wants = pdu.registered_delivery & 0x03;
	const ep = epoch;
	return {
		pdu: pdu.response({ message_id: msgid }),
		ack: () => {
			if (wants !== 1 && wants !== 2) {
				return;
			}
			setTimeout(() => {
				if (ep !== epoch) {
					return;
				}
				const ok = cfg.receipts === 'delivered';
				if (cfg.receipts === 'none' || (ok && wants === 2)) {
					return;
				}
				queueReceipt({ msgid, from: pdu.destination_addr, fromTon: pdu.dest_addr_ton,
					to: pdu.source_addr, toTon: pdu.source_addr_ton, text: partText, ok,
					submitted: new Date() });
			}, cfg.receipt_delay_ms);
		},
	};
}

// ---------------------------------------------------------------------------------------------
// Outbound: MO and receipts, one deliver_sm at a time

function queueReceipt(r) {
	const now = new Date();
	let snippet = '';
	for (const ch of r.text.slice(0, 20)) {
		snippet += GSM_ENC.has(ch) && GSM_ENC.get(ch).length === 1 ? ch : '?';
	}
	// SMPP 3.4 Appendix B: the MC delivery receipt format.
	const text = `id:${r.msgid} sub:001 dlvrd:${r.ok ? '001' : '000'} submit date:` +
		`${stamp(r.submitted)} done date:${stamp(now)} stat:${r.ok ? 'DELIVRD' : 'UNDELIV'} ` +
		`err:${r.ok ? '000' : '001'} text:${snippet}`;
	outq.push({
		kind: 'receipt', msgid: r.msgid,
		opts: {
			source_addr_ton: r.fromTon, source_addr_npi: 1, source_addr: r.from,
			dest_addr_ton: r.toTon, dest_addr_npi: 1, destination_addr: r.to,
			esm_class: ESM_RECEIPT, data_coding: 0,
			short_message: Buffer.from(gsmUnits(text).flat()),
			receipted_message_id: r.msgid,
			message_state: r.ok ? MSG_STATE_DELIVERED : MSG_STATE_UNDELIVERABLE,
		},
	});
	pump();
}

// Splits an MO into deliver_sm bodies: 160 septets / 140 octets for one SMS, 153 septets /
// 67 UCS-2 code units per part with a 6-octet UDH (23.040 9.2.3.24.1); neither an escape
// sequence nor a surrogate pair is split.
function encodeMo(text, coding) {
	let units = null;
	if (coding === 'gsm' || coding === 'auto') {
		units = gsmUnits(text);
		if (!units && coding === 'gsm') {
			throw new Error('text has characters outside GSM 03.38');
		}
	}
	let dc;
	let max1;
	let maxN;
	let size;
	if (units) {
		dc = 0x00;
		max1 = 160;
		maxN = 153;
		size = (u) => u.length;
	} else if (coding === 'ucs2' || coding === 'auto') {
		dc = 0x08;
		units = [...text].map((ch) => {
			const b = Buffer.from(ch, 'utf16le').swap16();
			return [...b];
		});
		max1 = 140;
		maxN = 134;
		size = (u) => u.length;
	} else {
		throw new Error(`unknown coding ${coding}`);
	}
	const total = units.reduce((n, u) => n + size(u), 0);
	if (total <= max1) {
		return { dc, parts: [Buffer.from(units.flat())], udh: false };
	}
	const parts = [];
	let cur = [];
	let n = 0;
	for (const u of units) {
		if (n + size(u) > maxN) {
			parts.push(cur);
			cur = [];
			n = 0;
		}
		cur.push(...u);
		n += size(u);
	}
	parts.push(cur);
	if (parts.length > 255) {
		throw new Error('text needs more than 255 parts');
	}
	const ref = (moRef = (moRef + 1) & 0xff);
	return {
		dc, udh: true,
		parts: parts.map((p, i) => Buffer.from([0x05, 0x00, 0x03, ref, parts.length, i + 1, ...p])),
	};
}

function deliveryConn() {
	let best = null;
	for (const c of conns) {
		if (!c.closed && (c.bound === 'transceiver' || c.bound === 'receiver') &&
			(!best || c.boundAt > best.boundAt)) {
			best = c;
		}
	}
	return best;
}

function requeueCurrent(why) {
	if (!current) {
		return;
	}
	log(`deliver_sm seq ${current.seq} abandoned (${why}); it will be sent again`);
	clearTimeout(current.timer);
	if (current.item.kind === 'mo' && current.item.rec.state === 'sent') {
		current.item.rec.state = 'queued';
	}
	current = null;
}

function pump() {
	if (current || retryTimer || !outq.length) {
		return;
	}
	const conn = deliveryConn();
	if (!conn || conn.enquirePending) {
		return;
	}
	const item = outq[0];
	let opts;
	if (item.kind === 'mo') {
		const m = item.enc;
		opts = {
			source_addr_ton: item.src.ton, source_addr_npi: item.src.npi,
			source_addr: item.src.addr,
			dest_addr_ton: item.dst.ton, dest_addr_npi: item.dst.npi,
			destination_addr: item.dst.addr,
			esm_class: m.udh ? ESM_UDHI : 0, data_coding: m.dc,
			short_message: m.parts[item.next],
		};
		item.rec.state = 'sent';
		item.rec.attempts++;
	} else {
		opts = item.opts;
	}
	const pdu = new smpp.PDU('deliver_sm', opts);
	const token = { item, conn, seq: 0, timer: null };
	current = token;
	conn.session.send(pdu, (resp) => onDeliverResp(token, resp));
	token.seq = pdu.sequence_number;
	token.timer = setTimeout(() => {
		if (current === token) {
			recordError(`no response to deliver_sm seq ${token.seq} in 30 s`);
			onDeliverResp(token, { command: 'timeout', command_status: -1 });
		}
	}, DELIVER_TIMEOUT_MS);
}

function onDeliverResp(token, resp) {
	if (current !== token) {
		return; // abandoned (reset, drop or a newer bind)
	}
	current = null;
	clearTimeout(token.timer);
	const item = token.item;
	const status = resp.command_status;
	if (resp.command !== 'deliver_sm_resp' && resp.command !== 'timeout') {
		recordError(`deliver_sm seq ${token.seq} answered with ${resp.command}`);
	}
	if (item.kind === 'mo') {
		item.rec.last_status = status;
	}
	if (status === ST.OK) {
		if (item.kind === 'mo' && ++item.next < item.enc.parts.length) {
			item.rec.state = 'queued';
		} else {
			if (item.kind === 'mo') {
				item.rec.state = 'acked';
			}
			outq.shift();
		}
		pump();
	} else if (status === ST.RX_P_APPN) {
		log(`deliver_sm seq ${token.seq}: permanent error 0x65, dropped`);
		if (item.kind === 'mo') {
			item.rec.state = 'failed';
		}
		outq.shift();
		pump();
	} else {
		log(`deliver_sm seq ${token.seq}: temporary error 0x${status.toString(16)}, ` +
			`retry in ${cfg.mo_retry_ms} ms`);
		if (item.kind === 'mo') {
			item.rec.state = 'retry';
		}
		const ep = epoch;
		retryTimer = setTimeout(() => {
			if (ep !== epoch) {
				return;
			}
			retryTimer = null;
			pump();
		}, cfg.mo_retry_ms);
	}
}

// ---------------------------------------------------------------------------------------------
// The SMPP listener

const server = smpp.createServer((session) => {
	const conn = {
		id: ++connSeq, session, bound: null, boundAt: 0, outstanding: 0, closed: false,
		enquirePending: false,
	};
	conns.add(conn);
	log(`conn ${conn.id}: connected`);
	session.on('pdu', (pdu) => {
		log(`conn ${conn.id} <- ${pdu.command} seq ${pdu.sequence_number} status ` +
			`${pdu.command_status}`);
		if (!pdu.isResponse()) {
			onRequest(conn, pdu);
		}
	});
	session.on('send', (pdu) => {
		log(`conn ${conn.id} -> ${pdu.command} seq ${pdu.sequence_number} status ` +
			`${pdu.command_status}`);
	});
	session.on('error', (e) => {
		// Socket errors (a reset peer) are not protocol errors; PDU parse errors are.
		if (e.code) {
			log(`conn ${conn.id}: ${e.message}`);
		} else {
			recordError(`conn ${conn.id}: ${e.message}`);
		}
		session.destroy();
	});
	session.on('close', () => {
		conn.closed = true;
		conn.bound = null;
		conns.delete(conn);
		log(`conn ${conn.id}: closed`);
		if (current && current.conn === conn) {
			requeueCurrent('connection closed');
		}
		pump();
	});
});

// SMSC-originated enquire_link (only with --enquire-ms), never while a deliver_sm is unanswered.
if (args.enquireMs > 0) {
	setInterval(() => {
		for (const conn of conns) {
			if (!conn.bound || conn.enquirePending || (current && current.conn === conn)) {
				continue;
			}
			conn.enquirePending = true;
			sessionSend(conn, new smpp.PDU('enquire_link'), () => {
				conn.enquirePending = false;
				pump();
			});
		}
	}, args.enquireMs);
}

// ---------------------------------------------------------------------------------------------
// Control API

function stateJson() {
	let bound = false;
	for (const c of conns) {
		bound = bound || (!c.closed && !!c.bound);
	}
	const pending = [...concat.values()].map((c) => ({
		from: c.from, to: c.to, ref: c.ref, total: c.total, have: c.parts.size,
	}));
	return { bound, ...st, mo: st.mo.map((m) => ({ ...m })), pending_concat: pending };
}

function applyConfig(body) {
	const known = Object.keys(cfg);
	for (const k of Object.keys(body)) {
		if (!known.includes(k)) {
			throw new Error(`unknown config key ${k}`);
		}
	}
	if ('receipts' in body && !['delivered', 'undeliverable', 'none'].includes(body.receipts)) {
		throw new Error('receipts must be "delivered", "undeliverable" or "none"');
	}
	if ('reject' in body && (typeof body.reject !== 'object' || body.reject === null)) {
		throw new Error('reject must be an object');
	}
	Object.assign(cfg, body);
}

function postMo(body) {
	for (const k of ['from', 'to', 'text']) {
		if (typeof body[k] !== 'string') {
			throw new Error(`"${k}" must be a string`);
		}
	}
	const enc = encodeMo(body.text, body.coding || 'auto');
	const rec = {
		id: st.mo.length + 1, from: body.from, to: body.to, text: body.text, state: 'queued',
		attempts: 0, last_status: 0,
	};
	st.mo.push(rec);
	outq.push({ kind: 'mo', rec, enc, next: 0, src: addrIn(body.from), dst: addrIn(body.to) });
	pump();
	return { id: rec.id };
}

function control(req, res) {
	let data = '';
	req.setEncoding('utf8');
	req.on('data', (d) => { data += d; });
	req.on('end', () => {
		const reply = (code, obj) => {
			const s = JSON.stringify(obj);
			res.writeHead(code, { 'Content-Type': 'application/json',
				'Content-Length': Buffer.byteLength(s) });
			res.end(s);
		};
		try {
			const body = data ? JSON.parse(data) : {};
			const route = `${req.method} ${req.url.split('?')[0]}`;
			switch (route) {
			case 'GET /state': return reply(200, stateJson());
			case 'POST /mo': return reply(200, postMo(body));
			case 'POST /config': applyConfig(body); return reply(200, { ...cfg });
			case 'POST /drop':
				for (const c of conns) {
					c.session.destroy();
				}
				return reply(200, { dropped: conns.size });
			case 'POST /reset': resetState(); return reply(200, { ok: true });
			default: return reply(404, { error: `no route ${route}` });
			}
		} catch (e) {
			return reply(400, { error: e.message });
		}
	});
}

const ctl = http.createServer(control);
let listening = 0;
function ready() {
	if (++listening === 2) {
		process.stdout.write('ready\n');
		log(`listening on 127.0.0.1:${args.port}, control 127.0.0.1:${args.control}, ` +
			`window ${args.window}`);
	}
}
for (const srv of [server, ctl]) {
	srv.on('error', (e) => {
		log(`listen failed: ${e.message}`);
		process.exit(1);
	});
}
server.listen(args.port, '127.0.0.1', ready);
ctl.listen(args.control, '127.0.0.1', ready);

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
