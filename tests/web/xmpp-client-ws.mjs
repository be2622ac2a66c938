// Two @xmpp/client users log in over XMPP-over-WebSocket (RFC 7395) and exchange a chat message
// and a reply; prints one JSON line and exits 0 on success, 1 with a reason on any failure.
// Invariant: the process ends within HARD_TIMEOUT_MS whatever the server does (no reconnects).
//
// usage: node xmpp-client-ws.mjs SERVICE DOMAIN USER1 PW1 USER2 PW2
//   SERVICE  e.g. ws://127.0.0.1:5280/xmpp-websocket
//   USERn    a localpart or a bare JID (its localpart is used)

const HARD_TIMEOUT_MS = 20000;

// Node 20 has the WebSocket client only behind a flag (unflagged from Node 22); @xmpp/websocket
// uses the global WebSocket, so run ourselves again with the flag when it is missing.
if (typeof globalThis.WebSocket === "undefined") {
	const { spawnSync } = await import("node:child_process");
	if (process.execArgv.includes("--experimental-websocket")) {
		console.error("xmpp-client-ws: this Node.js has no WebSocket client (need Node >= 20.10)");
		process.exit(1);
	}
	const r = spawnSync(process.execPath,
		["--experimental-websocket", "--no-warnings", ...process.execArgv,
			...process.argv.slice(1)], { stdio: "inherit" });
	process.exit(r.status === null ? 1 : r.status);
}

const { client, xml } = await import("@xmpp/client");

const started = Date.now();
let stage = "start";
const trace = []; // the last stanzas in and out, printed on failure

function fail(msg) {
	console.error(`xmpp-client-ws: FAILED at stage "${stage}" ` +
		`after ${Date.now() - started} ms: ${msg}`);
	if (trace.length)
		console.error("last stanzas:\n" + trace.slice(-30).join("\n"));
	process.exit(1);
}

const args = process.argv.slice(2);
if (args.length !== 6) {
	console.error("usage: node xmpp-client-ws.mjs SERVICE DOMAIN USER1 PW1 USER2 PW2");
	process.exit(2);
}
const [service, domain, user1, pw1, user2, pw2] = args;
const localpart = (u) => (u.includes("@") ? u.split("@")[0] : u);

const hard = setTimeout(() => fail(`hard timeout of ${HARD_TIMEOUT_MS} ms`), HARD_TIMEOUT_MS);
hard.unref();
process.on("unhandledRejection", (e) => fail(`unhandled rejection: ${e?.stack || e}`));

function make(name, user, password) {
	const x = client({ service, domain, username: localpart(user), password,
		resource: `web-${name}-${process.pid}` });
	x.reconnect.stop(); // a failed login must fail the test, not retry
	x.on("error", (e) => fail(`${name}: ${e?.condition || ""} ${e?.message || e}`));
	x.on("element", (el) => trace.push(`${name} <- ${el.toString().slice(0, 400)}`));
	x.on("send", (el) => trace.push(`${name} -> ${el.toString().slice(0, 400)}`));
	return x;
}

// Resolves with the first stanza received by x that matches pred.
function next(x, pred) {
	return new Promise((resolve) => {
		const on = (st) => {
			if (pred(st)) {
				x.removeListener("stanza", on);
				resolve(st);
			}
		};
		x.on("stanza", on);
	});
}

const isChat = (from, body) => (st) => st.is("message") && st.attrs.type !== "error" &&
	st.getChildText("body") === body && (!from || st.attrs.from === from);

const a = make("user1", user1, pw1);
const b = make("user2", user2, pw2);

stage = "login";
const [ja, jb] = await Promise.all([a.start(), b.start()]).catch((e) =>
	fail(`login: ${e?.condition || ""} ${e?.message || e}`));

// Both become available; a ping round trip (XEP-0199) makes sure the server processed the
// presence before the message to the bare JID is routed (RFC 6121 8.5.2.1).
stage = "presence";
await a.send(xml("presence"));
await b.send(xml("presence"));
const ping = (x) => x.iqCaller.request(
	xml("iq", { type: "get", to: domain }, xml("ping", { xmlns: "urn:xmpp:ping" })), 5000)
	.catch((e) => fail(`ping: ${e?.condition || ""} ${e?.message || e}`));
await Promise.all([ping(a), ping(b)]);

stage = "user1 -> user2";
const body1 = `hello from ${ja.bare()} over WebSocket ${Date.now()}`;
const gotB = next(b, isChat(ja.toString(), body1));
await a.send(xml("message", { type: "chat", to: jb.bare().toString(), id: "ws-1" },
	xml("body", {}, body1)));
const m1 = await gotB;

stage = "user2 -> user1";
const body2 = `reply from ${jb.bare()} <&> ${Date.now()}`;
const gotA = next(a, isChat(jb.toString(), body2));
await b.send(xml("message", { type: "chat", to: m1.attrs.from, id: "ws-2" },
	xml("body", {}, body2)));
await gotA;

stage = "logout";
await Promise.all([a.stop(), b.stop()]).catch((e) => fail(`logout: ${e?.message || e}`));
console.log(JSON.stringify({ ok: true, transport: "websocket", service, user1: ja.toString(),
	user2: jb.toString(), sent: body1, reply: body2, ms: Date.now() - started }));
process.exit(0);
