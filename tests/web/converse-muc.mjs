// Converse.js group chat (XEP-0045) in headless Debian Chromium, driven by playwright-core: user 1
// (BOSH) and user 2 (WebSocket) join one room through Converse's "Add groupchat" dialog as
// "alice" and "bob", see each other in the occupant list, exchange groupchat messages, user 2
// leaves (and user 1 sees bob go), rejoins and must see the earlier messages exactly once each.
// Invariant: the process ends within HARD_TIMEOUT_MS, prints one JSON line and exits 0 only if
// every step was shown in the browsers; otherwise exits 1 with the stage that failed, the reason
// and each page's console log (debug level: every stanza).
//
// usage: node converse-muc.mjs --bosh URL --ws URL --domain D --user1 JID --pw1 P --user2 JID
//        --pw2 P [--room LOCALPART] [--chromium /usr/bin/chromium] [--screenshots DIR]
//        [--log-dir DIR]   (DIR/muc-user1.log, muc-user2.log: the whole console logs on failure)

import { parseArgs } from "node:util";
import { askPage, conversePage, converseRun, requireConverse, sleep } from "./lib.mjs";

const HARD_TIMEOUT_MS = 90000;
const STEP_MS = 20000; // one wait (login, a join, a message arriving)
const SETTLE_MS = 2500; // after the history shows, how long late duplicates may still arrive
const started = Date.now();

const { values: opt } = parseArgs({
	options: {
		bosh: { type: "string" }, ws: { type: "string" }, domain: { type: "string" },
		user1: { type: "string" }, pw1: { type: "string" },
		user2: { type: "string" }, pw2: { type: "string" },
		room: { type: "string" },
		chromium: { type: "string", default: "/usr/bin/chromium" },
		screenshots: { type: "string" },
		"log-dir": { type: "string" },
	},
});

// On failure, what each page's Converse knows about the room: the quickest hint at what went
// wrong.
async function diagnose(name, p) {
	const st = await askPage(p, (room) => {
		const c = window.__t?.converse;
		if (!c)
			return "converse not initialized";
		const m = c.state.chatboxes?.get(room);
		if (!m)
			return "room not open; chats: " + JSON.stringify(c.state.chatboxes?.map((x) =>
				[x.get("id"), x.get("type"), x.session?.get("connection_status")]));
		return JSON.stringify({
			connection_status: m.session?.get("connection_status"),
			nick: m.get("nick"), subject: m.get("subject"),
			features: m.features?.toJSON?.(),
			occupants: m.occupants?.map((o) => [o.get("nick"), o.get("presence"),
				o.get("role"), o.get("affiliation")]),
			messages: m.messages?.map((x) => [x.get("type"), x.get("nick"),
				x.get("body") ?? x.get("message")]),
		});
	}, roomJid);
	console.error(`${name}: room state: ${st}`);
}

// Console lines carry seconds since start; --log-dir writes them whole to DIR/muc-user*.log.
const run = converseRun({ name: "converse-muc", opt, started, stepMs: STEP_MS,
	shotPrefix: "muc-", tail: 80, stamp: true, clip: opt["log-dir"] ? Infinity : 800,
	loginErrors: false, diagnose });
const fail = run.fail;

const need = ["bosh", "ws", "domain", "user1", "pw1", "user2", "pw2"];
if (need.some((k) => !opt[k])) {
	console.error("usage: node converse-muc.mjs --bosh URL --ws URL --domain D " +
		"--user1 JID --pw1 P --user2 JID --pw2 P [--room LOCALPART] [--chromium PATH] " +
		"[--screenshots DIR] [--log-dir DIR]");
	process.exit(2);
}
requireConverse("converse-muc");
const fullJid = (u) => (u.includes("@") ? u : `${u}@${opt.domain}`);
// Converse lowercases room JIDs it opens from the dialog; so do we.
const roomJid = `${(opt.room || `baton-muc-${Date.now().toString(36)}`).toLowerCase()}@` +
	`conference.${opt.domain}`;

// muc_clear_messages_on_leave (Converse's default, made explicit) drops a room's messages when
// it is left, so the history seen after rejoining comes from the server.
await run.serve(conversePage("baton: Converse.js MUC", { muc_clear_messages_on_leave: true }));
await run.launch(HARD_TIMEOUT_MS);

const muc = (p) => p.locator(`converse-muc[jid="${roomJid}"]`);

// How the room's sidebar shows nick, in the page: "online", "offline" (an affiliated occupant
// who left stays listed, greyed: Converse keeps members, admins and owners), or "absent"; and
// whether Converse's occupant model is online.
function occupantState(p, nick) {
	return p.evaluate(([room, n]) => {
		const m = window.__t.converse.state.chatboxes?.get(room);
		const model = m?.occupants?.models?.find((o) => o.get("nick") === n);
		let shown = "absent";
		for (const li of document.querySelectorAll(
			`converse-muc[jid="${room}"] converse-muc-sidebar li.occupant`)) {
			if (li.querySelector(".occupant-nick")?.textContent.trim() !== n)
				continue;
			const color = li.querySelector(".chat-status")?.getAttribute("color") || "";
			shown = color.includes("offline") ? "offline" : "online";
		}
		return { shown, model: model ? model.get("presence") : "absent",
			affiliation: model?.get("affiliation") ?? null };
	}, [roomJid, nick]);
}

// Polls occupantState until ok(state) holds; fails with the last state after STEP_MS.
async function waitOccupant(name, p, nick, what, ok) {
	run.stage = `${name}: ${what}`;
	const until = Date.now() + STEP_MS;
	let st;
	for (;;) {
		st = await occupantState(p, nick);
		if (ok(st))
			return st;
		if (Date.now() > until)
			return fail(`${name}: not ${what}: ${nick} is ${JSON.stringify(st)}`);
		await sleep(100);
	}
}

const expectOccupant = (name, p, nick) => waitOccupant(name, p, nick,
	`sees ${nick} online in the occupant list`,
	(st) => st.shown === "online" && st.model === "online");
const expectGone = (name, p, nick) => waitOccupant(name, p, nick,
	`sees ${nick} gone from the occupant list`,
	(st) => st.shown !== "online" && st.model !== "online");

// Opens the room through the Groupchats dropdown → "Add groupchat" dialog ("Enter a new
// Groupchat"): room address and nickname, Join. Waits until Converse has entered the room
// (XEP-0045 7.2: our own presence, status 110, came back) and we are in our own occupant list.
async function joinViaUI(name, p, nick) {
	run.stage = `${name}: open "Add groupchat"`;
	await p.locator("converse-rooms-list converse-dropdown .dropdown-toggle").first().click();
	await p.locator("converse-rooms-list a.show-add-muc-modal").click();
	const modal = p.locator("converse-add-muc-modal");
	run.stage = `${name}: fill in "Enter a new Groupchat"`;
	await modal.locator('input[name="chatroom"]').fill(roomJid);
	await modal.locator('input[name="nickname"]').fill(nick);
	await modal.locator('input[type="submit"][name="join"]').click();
	run.stage = `${name}: join ${roomJid} as ${nick}`;
	await p.waitForFunction(([room, n]) => {
		const m = window.__t.converse.state.chatboxes?.get(room);
		return m?.session?.get("connection_status") === 5 /* ROOMSTATUS.ENTERED */ &&
			m.get("nick") === n;
	}, [roomJid, nick], { timeout: STEP_MS }).catch(() =>
		fail(`${name} did not enter ${roomJid} as ${nick} within ${STEP_MS} ms`));
	await muc(p).locator("textarea.chat-textarea").waitFor({ state: "visible" });
	await expectOccupant(name, p, nick);
}

async function say(name, p, body) {
	run.stage = `${name}: send "${body}"`;
	const ta = muc(p).locator("textarea.chat-textarea");
	await ta.fill(body);
	await ta.press("Enter");
}

// Waits until the groupchat message body from nick is shown in the room.
async function expectShown(name, p, nick, body) {
	run.stage = `${name}: shows "${body}" from ${nick}`;
	await p.waitForFunction(([room, n, b]) => {
		const m = window.__t.converse.state.chatboxes?.get(room);
		return !!m?.messages?.models?.some((x) => x.get("body") === b &&
			x.get("nick") === n && x.get("type") === "groupchat");
	}, [roomJid, nick, body], { timeout: STEP_MS }).catch(() =>
		fail(`${name} never got "${body}" from ${nick}`));
	await muc(p).locator(".chat-msg__text", { hasText: body }).first()
		.waitFor({ state: "visible" })
		.catch(() => fail(`${name} has "${body}" from ${nick} but does not show it`));
}

// How often each body is shown in the room (DOM) and held by Converse (models).
function countShown(p, bodies) {
	return p.evaluate(([room, bs]) => {
		const el = document.querySelector(`converse-muc[jid="${room}"]`);
		const texts = el ? [...el.querySelectorAll(".chat-msg__text")]
			.map((e) => e.textContent.trim()) : [];
		const models = window.__t.converse.state.chatboxes?.get(room)?.messages?.models || [];
		return bs.map((b) => ({ body: b, shown: texts.filter((t) => t === b).length,
			models: models.filter((x) => x.get("body") === b).length }));
	}, [roomJid, bodies]);
}

const j1 = fullJid(opt.user1);
const j2 = fullJid(opt.user2);
try {
	const [p1, p2, c1, c2] = await run.login(j1, j2, "roomsAutoJoined");

	// alice creates the room by joining it (XEP-0045 10.1.1), then bob joins
	await joinViaUI("user1", p1, "alice");
	const created = await p1.evaluate((room) =>
		window.__t.converse.state.chatboxes.get(room).getOwnAffiliation(), roomJid);
	await joinViaUI("user2", p2, "bob");
	await expectOccupant("user2", p2, "alice");
	await expectOccupant("user1", p1, "bob");

	// the subject (XEP-0045 8.1), set by the owner with Converse's /topic command
	const subject = `baton room topic ${Date.now()}`;
	await say("user1", p1, `/topic ${subject}`);
	run.stage = "user2: shows the subject";
	await muc(p2).locator(".chat-head__desc", { hasText: subject }).first()
		.waitFor({ state: "visible" })
		.catch(() => fail(`user2 does not show the subject "${subject}"`));

	const body1 = `hello room from alice over BOSH <b>&amp;</b> ${Date.now()}`;
	await say("user1", p1, body1);
	await expectShown("user1", p1, "alice", body1); // the room reflects it to its sender
	await expectShown("user2", p2, "alice", body1);
	const body2 = `reply from bob over WebSocket ${Date.now()}`;
	await say("user2", p2, body2);
	await expectShown("user2", p2, "bob", body2);
	await expectShown("user1", p1, "bob", body2);

	// bob leaves through the room's menu: "Leave" and confirm (XEP-0045 7.14)
	run.stage = "user2: leave the room";
	await muc(p2).locator("converse-muc-heading .chatbox-title__buttons converse-dropdown " +
		".dropdown-toggle").first().click();
	await muc(p2).locator("a.close-chatbox-button").click();
	await p2.locator("converse-confirm-modal button[type=submit]").click();
	await muc(p2).waitFor({ state: "detached" })
		.catch(() => fail("user2's room view did not close"));
	const gone = await expectGone("user1", p1, "bob");

	// bob comes back: the history (Converse asks the room's MAM archive, XEP-0313, when the
	// room advertises it, and requests no MUC history then) shows each message once
	await joinViaUI("user2", p2, "bob");
	await expectOccupant("user2", p2, "alice");
	await expectOccupant("user1", p1, "bob");
	await expectShown("user2", p2, "alice", body1);
	await expectShown("user2", p2, "bob", body2);
	run.stage = "user2: history after rejoining, each message once";
	await sleep(SETTLE_MS);
	const counts = await countShown(p2, [body1, body2]);
	if (counts.some((c) => c.shown !== 1 || c.models !== 1))
		fail(`after rejoining, messages not shown exactly once: ${JSON.stringify(counts)}`);
	await muc(p2).locator(".chat-head__desc", { hasText: subject }).first()
		.waitFor({ state: "visible" })
		.catch(() => fail(`after rejoining, user2 does not show the subject "${subject}"`));
	const features = await p2.evaluate((room) => {
		const f = window.__t.converse.state.chatboxes.get(room).features;
		return { mam_enabled: !!f.get("mam_enabled"), persistent: !!f.get("persistent") };
	}, roomJid);

	await run.finish();
	console.log(JSON.stringify({ ok: true, room: roomJid, creator_affiliation: created,
		user1: { jid: c1.jid, transport: c1.proto, nick: "alice" },
		user2: { jid: c2.jid, transport: c2.proto, nick: "bob" },
		subject, sent: body1, reply: body2, bob_after_leaving: gone, history: counts,
		room_features: features,
		ms: Date.now() - started }));
	process.exit(0);
} catch (e) {
	await fail(e?.message || String(e));
}
