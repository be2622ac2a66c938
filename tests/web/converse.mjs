// Converse.js in headless Debian Chromium (driven by playwright-core): user 1 logs in over BOSH
// (XEP-0124/0206), user 2 over WebSocket (RFC 7395); through the UI user 1 starts a chat with
// user 2 and sends a message, user 2 sees it and replies, user 1 sees the reply.
// Invariant: the process ends within HARD_TIMEOUT_MS, prints one JSON line and exits 0 only if
// both messages were shown in the receiving browser; otherwise exits 1 with the stage that failed,
// the reason and each page's console log.
//
// usage: node converse.mjs --bosh URL --ws URL --domain D --user1 JID --pw1 P --user2 JID --pw2 P
//        [--serve-only] [--chromium /usr/bin/chromium] [--screenshots DIR]
// --serve-only prints the page URL and serves Converse until killed (for a person to look at).

import { parseArgs } from "node:util";
import { askPage, conversePage, converseRun, requireConverse } from "./lib.mjs";

const HARD_TIMEOUT_MS = 60000;
const STEP_MS = 20000; // one wait (login, a message arriving)
const started = Date.now();

const { values: opt } = parseArgs({
	options: {
		bosh: { type: "string" }, ws: { type: "string" }, domain: { type: "string" },
		user1: { type: "string" }, pw1: { type: "string" },
		user2: { type: "string" }, pw2: { type: "string" },
		chromium: { type: "string", default: "/usr/bin/chromium" },
		screenshots: { type: "string" },
		"serve-only": { type: "boolean", default: false },
	},
});

// Converse waits for server features before some UI works (e.g. a chat does not open until the
// XEP-0191 blocklist is fetched): on failure, name its readiness promises that never resolved.
async function diagnose(name, p) {
	const pending = await askPage(p, async (names) => {
		const api = window.__t?.api;
		if (!api)
			return ["converse not initialized"];
		const out = [];
		for (const n of names) {
			const done = await Promise.race([
				Promise.resolve(api.waitUntil(n)).then(() => true, () => true),
				new Promise((r) => setTimeout(() => r(false), 100))]);
			if (!done)
				out.push(n);
		}
		return out;
	}, ["connected", "rosterContactsFetched", "chatBoxesFetched", "blocklistInitialized",
		"presencesInitialized", "VCardsInitialized", "discoInitialized"], (s) => [s]);
	if (pending.length)
		console.error(`${name}: Converse still waiting for: ${pending.join(", ")}`);
}

const run = converseRun({ name: "converse", opt, started, stepMs: STEP_MS, shotPrefix: "",
	tail: 60, stamp: false, clip: 600, loginErrors: true, diagnose });
const fail = run.fail;

const need = ["bosh", "ws", "domain", "user1", "pw1", "user2", "pw2"];
if (!opt["serve-only"] && need.some((k) => !opt[k])) {
	console.error("usage: node converse.mjs --bosh URL --ws URL --domain D " +
		"--user1 JID --pw1 P --user2 JID --pw2 P [--chromium PATH] [--screenshots DIR]");
	process.exit(2);
}
requireConverse("converse");
const fullJid = (u) => (u.includes("@") ? u : `${u}@${opt.domain}`);

await run.serve(conversePage("baton: Converse.js", { allow_non_roster_messaging: true }));
if (opt["serve-only"]) {
	console.log(`serving ${run.base}  e.g. ` +
		`${run.base}?jid=JID&password=PW&ws=ws://127.0.0.1:5280/xmpp-websocket`);
	await new Promise(() => {});
}
await run.launch(HARD_TIMEOUT_MS);

// Starts a chat with jid through the roster's "Start a new chat" dialog, unless the chat is
// already open; then types body into that chat's text area and presses Enter.
async function sendViaUI(name, p, jid, body, { startChat }) {
	if (startChat) {
		run.stage = `${name}: open "Start a new chat"`;
		await p.locator(".dropdown--contacts .dropdown-toggle").first().click();
		await p.locator("a.new-chat").click();
		const modal = p.locator("converse-new-chat-modal");
		await modal.locator('input[name="jid"]').fill(jid);
		await modal.locator('button[type="submit"]').click();
	}
	run.stage = `${name}: type into the chat with ${jid}`;
	const box = p.locator(`converse-chat[jid="${jid}"]`);
	const ta = box.locator("textarea.chat-textarea");
	await ta.waitFor({ state: "visible" });
	await ta.fill(body);
	await ta.press("Enter");
	// our own message shows in our chat
	await box.locator(".chat-msg__text", { hasText: body }).first().waitFor({ state: "visible" });
}

// Waits until a message with body from jid is shown in the receiver's chat with jid, making
// that chat the visible one first (fullscreen mode shows one chat at a time).
async function expectShown(name, p, jid, body) {
	run.stage = `${name}: receive from ${jid}`;
	await p.waitForFunction(([j, b]) => {
		const chat = window.__t.converse.state.chatboxes?.get(j);
		return !!chat?.messages?.models?.some((m) => m.get("body") === b &&
			m.get("sender") === "them");
	}, [jid, body], { timeout: STEP_MS }).catch(() =>
		fail(`${name} never got "${body}" from ${jid}`));
	await p.evaluate((j) => window.__t.api.chats.open(j, {}, true), jid);
	await p.locator(`converse-chat[jid="${jid}"] .chat-msg__text`, { hasText: body })
		.first().waitFor({ state: "visible" })
		.catch(() => fail(`${name} has "${body}" from ${jid} but does not show it`));
}

const j1 = fullJid(opt.user1);
const j2 = fullJid(opt.user2);
try {
	// the roster (and with it the contacts dropdown) is ready once Converse says so
	const [p1, p2, c1, c2] = await run.login(j1, j2, "rosterContactsFetched");

	const body1 = `hello over BOSH to WebSocket <b>&amp;</b> ${Date.now()}`;
	await sendViaUI("user1", p1, j2, body1, { startChat: true });
	await expectShown("user2", p2, j1, body1);

	const body2 = `reply over WebSocket to BOSH ${Date.now()}`;
	await sendViaUI("user2", p2, j1, body2, { startChat: false });
	await expectShown("user1", p1, j2, body2);

	await run.finish();
	console.log(JSON.stringify({ ok: true,
		user1: { jid: c1.jid, transport: c1.proto, service: c1.service },
		user2: { jid: c2.jid, transport: c2.proto, service: c2.service },
		sent: body1, reply: body2, ms: Date.now() - started }));
	process.exit(0);
} catch (e) {
	await fail(e?.message || String(e));
}
