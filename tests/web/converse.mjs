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

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HARD_TIMEOUT_MS = 60000;
const STEP_MS = 20000; // one wait (login, a message arriving)
const started = Date.now();
const here = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.join(here, "node_modules", "converse.js", "dist");

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

let stage = "start";
let browser = null;
const logs = { user1: [], user2: [] };
let pages = {};
const notFound = []; // paths the page asked our server for that do not exist

let failing = false;
async function fail(msg) {
	if (failing)
		return new Promise(() => {}); // the first failure reports and exits
	failing = true;
	console.error(`converse: FAILED at stage "${stage}" after ${Date.now() - started} ms: ${msg}`);
	// Converse waits for server features before some UI works (e.g. a chat does not open until
	// the XEP-0191 blocklist is fetched): name its readiness promises that never resolved.
	for (const [name, p] of Object.entries(pages)) {
		const pending = await Promise.race([p.evaluate(async (names) => {
			const api = window.__t?.api;
			if (!api)
				return ["converse not initialized"];
			const out = [];
			for (const n of names) {
				const done = await Promise.race([Promise.resolve(api.waitUntil(n)).then(() => true, () => true),
					new Promise((r) => setTimeout(() => r(false), 100))]);
				if (!done)
					out.push(n);
			}
			return out;
		}, ["connected", "rosterContactsFetched", "chatBoxesFetched", "blocklistInitialized",
			"presencesInitialized", "VCardsInitialized", "discoInitialized"]),
		sleep(3000).then(() => ["(page did not answer)"])]).catch((e) => [`(${e.message})`]);
		if (pending.length)
			console.error(`${name}: Converse still waiting for: ${pending.join(", ")}`);
	}
	if (notFound.length)
		console.error(`page server 404s: ${notFound.join(" ")}`);
	if (opt.screenshots) {
		fs.mkdirSync(opt.screenshots, { recursive: true });
		for (const [name, p] of Object.entries(pages))
		{
			await p.screenshot({ path: path.join(opt.screenshots, `${name}.png`) })
				.catch(() => {});
			const html = await p.content().catch(() => "");
			fs.writeFileSync(path.join(opt.screenshots, `${name}.html`), html);
		}
	}
	for (const [name, lines] of Object.entries(logs)) {
		if (lines.length)
			console.error(`---- ${name} browser console (last 60 of ${lines.length}):\n` +
				lines.slice(-60).join("\n"));
	}
	if (browser)
		await Promise.race([browser.close().catch(() => {}), sleep(3000)]);
	process.exit(1);
}

function sleep(ms) {
	return new Promise((r) => setTimeout(r, ms));
}

const need = ["bosh", "ws", "domain", "user1", "pw1", "user2", "pw2"];
if (!opt["serve-only"] && need.some((k) => !opt[k])) {
	console.error("usage: node converse.mjs --bosh URL --ws URL --domain D " +
		"--user1 JID --pw1 P --user2 JID --pw2 P [--chromium PATH] [--screenshots DIR]");
	process.exit(2);
}
if (!fs.existsSync(path.join(DIST, "converse.min.js"))) {
	console.error(`converse: ${DIST}/converse.min.js missing: run 'npm ci' in ${here}`);
	process.exit(2);
}
const fullJid = (u) => (u.includes("@") ? u : `${u}@${opt.domain}`);

// ---- the page: Converse with a tiny plugin that exposes its API to the test as window.__t
// The configuration comes from the query: jid, password, and either bosh=URL or ws=URL.
const PAGE = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>baton: Converse.js</title>
<link rel="stylesheet" href="/dist/converse.min.css">
<script type="module" src="/dist/converse.min.js"></script></head>
<body class="converse-fullscreen"><script type="module">
const q = new URLSearchParams(location.search);
window.__t = { connected: false, events: [] };
converse.plugins.add("baton-test", {
	initialize() {
		const c = this._converse;
		window.__t.api = c.api;
		window.__t.converse = c;
		c.api.listen.on("connected", () => {
			window.__t.connected = true;
			window.__t.events.push("connected");
		});
		c.api.listen.on("disconnected", () => {
			window.__t.connected = false;
			window.__t.events.push("disconnected");
		});
	},
});
const cfg = {
	assets_path: "/dist/",
	authentication: "login",
	auto_login: true,
	jid: q.get("jid"),
	password: q.get("password"),
	discover_connection_methods: false,
	view_mode: "fullscreen",
	allow_non_roster_messaging: true,
	persistent_store: "sessionStorage",
	auto_reconnect: false,
	play_sounds: false,
	show_desktop_notifications: false,
	i18n: "en",
	loglevel: q.get("loglevel") || "info",
	whitelisted_plugins: ["baton-test"],
};
if (q.get("bosh")) cfg.bosh_service_url = q.get("bosh");
if (q.get("ws")) cfg.websocket_url = q.get("ws");
converse.initialize(cfg);
</script></body></html>
`;

const TYPES = {
	".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
	".json": "application/json", ".wasm": "application/wasm", ".svg": "image/svg+xml",
	".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif", ".ico": "image/x-icon",
	".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf",
	".eot": "application/vnd.ms-fontobject",
	".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".map": "application/json", ".html": "text/html",
};

// Serves PAGE at / and node_modules/converse.js/dist/* at /dist/*; nothing else.
function serve() {
	const srv = http.createServer((req, res) => {
		const url = new URL(req.url, "http://x");
		if (url.pathname === "/" || url.pathname === "/index.html") {
			res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
			return res.end(PAGE);
		}
		if (url.pathname.startsWith("/dist/")) {
			const rel = path.normalize(decodeURIComponent(url.pathname.slice(6)));
			const file = path.join(DIST, rel);
			if (!rel.startsWith("..") && file.startsWith(DIST + path.sep) &&
			    fs.existsSync(file) && fs.statSync(file).isFile()) {
				res.writeHead(200, { "content-type":
					TYPES[path.extname(file)] || "application/octet-stream" });
				return fs.createReadStream(file).pipe(res);
			}
		}
		if (url.pathname !== "/favicon.ico")
			notFound.push(url.pathname);
		if (opt["serve-only"])
			console.error(`404 ${url.pathname}`);
		res.writeHead(404, { "content-type": "text/plain" });
		res.end("not found\n");
	});
	return new Promise((resolve, reject) => {
		srv.on("error", reject);
		srv.listen(0, "127.0.0.1", () => resolve(srv));
	});
}

const httpd = await serve();
const base = `http://127.0.0.1:${httpd.address().port}/`;
const pageURL = (jid, pw, transport, url) => base + "?" + new URLSearchParams({
	jid, password: pw, [transport]: url, loglevel: "debug" }).toString();

if (opt["serve-only"]) {
	console.log(`serving ${base}  e.g. ` +
		`${base}?jid=JID&password=PW&ws=ws://127.0.0.1:5280/xmpp-websocket`);
	await new Promise(() => {});
}

const hard = setTimeout(() => fail(`hard timeout of ${HARD_TIMEOUT_MS} ms`), HARD_TIMEOUT_MS);
hard.unref();
process.on("unhandledRejection", (e) => fail(`unhandled rejection: ${e?.stack || e}`));

let chromium;
try {
	({ chromium } = await import("playwright-core"));
} catch (e) {
	console.error(`converse: playwright-core missing: run 'npm ci' in ${here} (${e.message})`);
	process.exit(2);
}
if (!fs.existsSync(opt.chromium)) {
	console.error(`converse: ${opt.chromium} missing (apt-get install chromium)`);
	process.exit(2);
}

stage = "launch chromium";
browser = await chromium.launch({
	executablePath: opt.chromium,
	headless: true,
	args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
	timeout: STEP_MS,
}).catch((e) => fail(`cannot launch ${opt.chromium}: ${e.message}`));

// One browser context per user: separate storage, as two people on two machines.
async function openUser(name, jid, pw, transport, url) {
	const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
	const p = await ctx.newPage();
	p.setDefaultTimeout(STEP_MS);
	p.on("console", (m) => logs[name].push(`[${m.type()}] ${m.text().slice(0, 600)}`));
	p.on("pageerror", (e) => logs[name].push(`[pageerror] ${e.message}`));
	p.on("requestfailed", (r) =>
		logs[name].push(`[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
	pages[name] = p;
	await p.goto(pageURL(jid, pw, transport, url));
	return p;
}

async function waitConnected(name, p) {
	await p.waitForFunction(() => window.__t && window.__t.connected &&
		window.__t.api.connection.connected(), null, { timeout: STEP_MS })
		.catch(() => fail(`${name} did not log in within ${STEP_MS} ms ` +
			`(last errors: ${JSON.stringify(logs[name]
				.filter((l) => /disconnect|auth|fail|error/i.test(l)).slice(-5))})`));
	// which transport Strophe really uses
	return p.evaluate(() => {
		const c = window.__t.api.connection.get();
		// (class names are minified: tell Strophe's transports apart by their state)
		const t = c._proto || {};
		const proto = t.socket instanceof WebSocket ? "websocket"
			: ("rid" in t && "sid" in t) ? "bosh" : "unknown";
		return { jid: c.jid, service: c.service, proto, sid: t.sid ?? null };
	});
}

// Starts a chat with jid through the roster's "Start a new chat" dialog, unless the chat is
// already open; then types body into that chat's text area and presses Enter.
async function sendViaUI(name, p, jid, body, { startChat }) {
	if (startChat) {
		stage = `${name}: open "Start a new chat"`;
		await p.locator(".dropdown--contacts .dropdown-toggle").first().click();
		await p.locator("a.new-chat").click();
		const modal = p.locator("converse-new-chat-modal");
		await modal.locator('input[name="jid"]').fill(jid);
		await modal.locator('button[type="submit"]').click();
	}
	stage = `${name}: type into the chat with ${jid}`;
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
	stage = `${name}: receive from ${jid}`;
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
	stage = "login";
	const [p1, p2] = await Promise.all([
		openUser("user1", j1, opt.pw1, "bosh", opt.bosh),
		openUser("user2", j2, opt.pw2, "ws", opt.ws),
	]);
	const [c1, c2] = await Promise.all([waitConnected("user1", p1), waitConnected("user2", p2)]);
	if (c1.proto !== "bosh" || c2.proto !== "websocket")
		fail(`wrong transports: user1 ${c1.proto}, user2 ${c2.proto}`);
	// the roster (and with it the contacts dropdown) is ready once Converse says so
	await Promise.all([p1, p2].map((p) =>
		p.evaluate(() => window.__t.api.waitUntil("rosterContactsFetched"))));

	const body1 = `hello over BOSH to WebSocket <b>&amp;</b> ${Date.now()}`;
	await sendViaUI("user1", p1, j2, body1, { startChat: true });
	await expectShown("user2", p2, j1, body1);

	const body2 = `reply over WebSocket to BOSH ${Date.now()}`;
	await sendViaUI("user2", p2, j1, body2, { startChat: false });
	await expectShown("user1", p1, j2, body2);

	if (opt.screenshots) {
		fs.mkdirSync(opt.screenshots, { recursive: true });
		await p1.screenshot({ path: path.join(opt.screenshots, "user1.png") });
		await p2.screenshot({ path: path.join(opt.screenshots, "user2.png") });
	}
	stage = "close";
	await Promise.race([browser.close(), sleep(5000)]);
	httpd.close();
	console.log(JSON.stringify({ ok: true,
		user1: { jid: c1.jid, transport: c1.proto, service: c1.service },
		user2: { jid: c2.jid, transport: c2.proto, service: c2.service },
		sent: body1, reply: body2, ms: Date.now() - started }));
	process.exit(0);
} catch (e) {
	await fail(e?.message || String(e));
}
