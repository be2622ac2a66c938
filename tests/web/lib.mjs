// What the Chromium scripts in tests/web share: loading playwright-core and launching Debian's
// Chromium, the first-failure guard and the hard timeout (all three scripts), and for
// converse.mjs and converse-muc.mjs the Converse page, its loopback server, one browser context
// per user, the login of user 1 over BOSH and user 2 over WebSocket, and the failure report.
// Invariant: nothing here writes to stdout (the scripts' result lines are theirs alone); a missing
// dependency exits 2 naming what to install, a failure exits 1 through the script's one report.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const here = path.dirname(fileURLToPath(import.meta.url));
export const DIST = path.join(here, "node_modules", "converse.js", "dist");

export function sleep(ms) {
	return new Promise((r) => setTimeout(r, ms));
}

// Returns fail(msg): the first call runs report(msg), which ends the process; any later call
// returns a promise that never resolves, so a second failure cannot cut the first report short.
export function firstFailure(report) {
	let failing = false;
	return async (msg) => {
		if (failing)
			return new Promise(() => {}); // the first failure reports and exits
		failing = true;
		return report(msg);
	};
}

// Calls fail after ms (the hard timeout that bounds the whole run) and on any unhandled
// rejection, so no await can leave the process hanging.
export function failAfter(ms, fail) {
	const hard = setTimeout(() => fail(`hard timeout of ${ms} ms`), ms);
	hard.unref();
	process.on("unhandledRejection", (e) => fail(`unhandled rejection: ${e?.stack || e}`));
}

// Returns playwright-core's chromium once exe exists; otherwise exits 2 with what to install,
// prefixed by the script's name.
export async function loadChromium(name, exe) {
	let chromium;
	try {
		({ chromium } = await import("playwright-core"));
	} catch (e) {
		console.error(`${name}: playwright-core missing: run 'npm ci' in ${here} (${e.message})`);
		process.exit(2);
	}
	if (!fs.existsSync(exe)) {
		console.error(`${name}: ${exe} missing (apt-get install chromium)`);
		process.exit(2);
	}
	return chromium;
}

// Launches exe headless; no sandbox, so it runs as any user and in containers.
export function launchChromium(chromium, exe, timeout) {
	return chromium.launch({
		executablePath: exe,
		headless: true,
		args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
		timeout,
	});
}

// ---- Converse.js

// Exits 2 unless Converse's build is installed.
export function requireConverse(name) {
	if (!fs.existsSync(path.join(DIST, "converse.min.js"))) {
		console.error(`${name}: ${DIST}/converse.min.js missing: run 'npm ci' in ${here}`);
		process.exit(2);
	}
}

// The page: Converse with a tiny plugin that exposes its API to the test as window.__t. The
// configuration comes from the query: jid, password, and either bosh=URL or ws=URL; extra holds
// the script's own Converse settings.
export function conversePage(title, extra) {
	return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
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
	persistent_store: "sessionStorage",
	auto_reconnect: false,
	play_sounds: false,
	show_desktop_notifications: false,
	i18n: "en",
	loglevel: q.get("loglevel") || "info",
	whitelisted_plugins: ["baton-test"],
	...${JSON.stringify(extra)},
};
if (q.get("bosh")) cfg.bosh_service_url = q.get("bosh");
if (q.get("ws")) cfg.websocket_url = q.get("ws");
converse.initialize(cfg);
</script></body></html>
`;
}

const TYPES = {
	".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
	".json": "application/json", ".wasm": "application/wasm", ".svg": "image/svg+xml",
	".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif", ".ico": "image/x-icon",
	".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf",
	".eot": "application/vnd.ms-fontobject",
	".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".map": "application/json", ".html": "text/html",
};

// Serves page at / and node_modules/converse.js/dist/* at /dist/*, nothing else, on a free
// loopback port; resolves to the server. Paths asked for that do not exist go to notFound (and
// to stderr with log404).
function servePage(page, notFound, log404) {
	const srv = http.createServer((req, res) => {
		const url = new URL(req.url, "http://x");
		if (url.pathname === "/" || url.pathname === "/index.html") {
			res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
			return res.end(page);
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
		if (log404)
			console.error(`404 ${url.pathname}`);
		res.writeHead(404, { "content-type": "text/plain" });
		res.end("not found\n");
	});
	return new Promise((resolve, reject) => {
		srv.on("error", reject);
		srv.listen(0, "127.0.0.1", () => resolve(srv));
	});
}

// Asks page p for fn(arg) within 3 s; a page that does not answer or throws gives
// wrap("(...)") instead, so a failure report never waits on a stuck page.
export function askPage(p, fn, arg, wrap = (s) => s) {
	return Promise.race([p.evaluate(fn, arg),
		sleep(3000).then(() => wrap("(page did not answer)"))])
		.catch((e) => wrap(`(${e.message})`));
}

// One run of a Converse script with users "user1" and "user2". The script sets run.stage as it
// goes and ends through run.fail(msg) or run.finish(). Settings:
//   name: the script's name in messages; opt: its parsed options (chromium, screenshots,
//   log-dir, serve-only); started: Date.now() at start; stepMs: one wait;
//   shotPrefix: put before user1.png etc.; tail: console lines printed per user on failure;
//   stamp: put seconds since start before each console line; clip: characters kept per line;
//   loginErrors: name the last errors when a login times out;
//   diagnose(name, page): prints the script's view of a page on failure.
export function converseRun(s) {
	const { name, opt, started, stepMs } = s;
	const run = {
		stage: "start",
		browser: null,
		pages: {},
		logs: { user1: [], user2: [] },
		notFound: [], // paths the page asked our server for that do not exist
		httpd: null,
		base: null,
	};

	run.fail = firstFailure(async (msg) => {
		console.error(`${name}: FAILED at stage "${run.stage}" after ` +
			`${Date.now() - started} ms: ${msg}`);
		for (const [pname, p] of Object.entries(run.pages))
			await s.diagnose(pname, p);
		if (run.notFound.length)
			console.error(`page server 404s: ${run.notFound.join(" ")}`);
		if (opt.screenshots) {
			fs.mkdirSync(opt.screenshots, { recursive: true });
			for (const [pname, p] of Object.entries(run.pages)) {
				const file = path.join(opt.screenshots, `${s.shotPrefix}${pname}`);
				await p.screenshot({ path: `${file}.png` }).catch(() => {});
				const html = await p.content().catch(() => "");
				fs.writeFileSync(`${file}.html`, html);
			}
		}
		if (opt["log-dir"]) {
			fs.mkdirSync(opt["log-dir"], { recursive: true });
			for (const [pname, lines] of Object.entries(run.logs))
				fs.writeFileSync(path.join(opt["log-dir"], `${s.shotPrefix}${pname}.log`),
					lines.join("\n") + "\n");
		}
		for (const [pname, lines] of Object.entries(run.logs)) {
			if (lines.length)
				console.error(`---- ${pname} browser console (last ${s.tail} of ` +
					`${lines.length}):\n` + lines.slice(-s.tail).join("\n"));
		}
		if (run.browser)
			await Promise.race([run.browser.close().catch(() => {}), sleep(3000)]);
		process.exit(1);
	});

	// Serves page (see conversePage); run.base is its URL.
	run.serve = async (page) => {
		run.httpd = await servePage(page, run.notFound, opt["serve-only"]);
		run.base = `http://127.0.0.1:${run.httpd.address().port}/`;
	};

	// Arms the hard timeout and launches Chromium.
	run.launch = async (hardMs) => {
		failAfter(hardMs, run.fail);
		const chromium = await loadChromium(name, opt.chromium);
		run.stage = "launch chromium";
		run.browser = await launchChromium(chromium, opt.chromium, stepMs)
			.catch((e) => run.fail(`cannot launch ${opt.chromium}: ${e.message}`));
	};

	// One browser context per user: separate storage, as two people on two machines.
	run.openUser = async (uname, jid, pw, transport, url) => {
		const ctx = await run.browser.newContext({ viewport: { width: 1200, height: 800 } });
		const p = await ctx.newPage();
		p.setDefaultTimeout(stepMs);
		const log = run.logs[uname];
		const t = () => (s.stamp ? `${((Date.now() - started) / 1000).toFixed(2)} ` : "");
		p.on("console", (m) => log.push(`${t()}[${m.type()}] ${m.text().slice(0, s.clip)}`));
		p.on("pageerror", (e) => log.push(`${t()}[pageerror] ${e.message}`));
		p.on("requestfailed", (r) =>
			log.push(`${t()}[requestfailed] ${r.url()} ${r.failure()?.errorText}`));
		run.pages[uname] = p;
		await p.goto(run.base + "?" + new URLSearchParams({
			jid, password: pw, [transport]: url, loglevel: "debug" }).toString());
		return p;
	};

	// Waits until uname's Converse is logged in; returns which transport Strophe really uses.
	run.waitConnected = async (uname, p) => {
		await p.waitForFunction(() => window.__t && window.__t.connected &&
			window.__t.api.connection.connected(), null, { timeout: stepMs })
			.catch(() => run.fail(`${uname} did not log in within ${stepMs} ms` +
				(s.loginErrors ? ` (last errors: ${JSON.stringify(run.logs[uname]
					.filter((l) => /disconnect|auth|fail|error/i.test(l)).slice(-5))})` : "")));
		return p.evaluate(() => {
			const c = window.__t.api.connection.get();
			// (class names are minified: tell Strophe's transports apart by their state)
			const t = c._proto || {};
			const proto = t.socket instanceof WebSocket ? "websocket"
				: ("rid" in t && "sid" in t) ? "bosh" : "unknown";
			return { jid: c.jid, service: c.service, proto, sid: t.sid ?? null };
		});
	};

	// User 1 (jid1) logs in over BOSH, user 2 (jid2) over WebSocket, both wait for Converse's
	// ready promise; returns [p1, p2, c1, c2], the pages and their connections.
	run.login = async (jid1, jid2, ready) => {
		run.stage = "login";
		const [p1, p2] = await Promise.all([
			run.openUser("user1", jid1, opt.pw1, "bosh", opt.bosh),
			run.openUser("user2", jid2, opt.pw2, "ws", opt.ws),
		]);
		const [c1, c2] = await Promise.all([run.waitConnected("user1", p1),
			run.waitConnected("user2", p2)]);
		if (c1.proto !== "bosh" || c2.proto !== "websocket")
			run.fail(`wrong transports: user1 ${c1.proto}, user2 ${c2.proto}`);
		await Promise.all([p1, p2].map((p) =>
			p.evaluate((r) => window.__t.api.waitUntil(r), ready)));
		return [p1, p2, c1, c2];
	};

	// Saves each page with --screenshots, closes the browser and the page server.
	run.finish = async () => {
		if (opt.screenshots) {
			fs.mkdirSync(opt.screenshots, { recursive: true });
			for (const [uname, p] of Object.entries(run.pages))
				await p.screenshot({ path: path.join(opt.screenshots,
					`${s.shotPrefix}${uname}.png`) });
		}
		run.stage = "close";
		await Promise.race([run.browser.close(), sleep(5000)]);
		run.httpd.close();
	};

	return run;
}
