// /m/, batond's web client without JavaScript, in headless Debian Chromium (driven by
// playwright-core) the way a person uses it: type the user name and password and click "Log in",
// open a conversation, type a message and click Send, reload until the peer's answer shows, click
// "Log out"; checks on the way that every page carries no script and a CSP that forbids script.
// Invariant: stdout carries only JSON lines ({"stage":"sent",...}, then the final result); the
// process ends within HARD_TIMEOUT_MS and exits 0 only if every check passed, else exits 1 with
// the stage that failed (and, with --screenshots, the page as PNG and HTML).
//
// usage: node m-chromium.mjs --base http://127.0.0.1:PORT --user NAME --pw PW --peer-jid JID
//        [--chromium /usr/bin/chromium] [--screenshots DIR] [--no-js]
// Protocol: after sending, the script prints {"stage":"sent","body":TEXT} and waits for one line
// {"expect":TEXT} on stdin: TEXT as the browser shows it (the literal characters, not HTML).

import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { parseArgs } from "node:util";
import { failAfter, firstFailure, launchChromium, loadChromium, sleep } from "./lib.mjs";

const HARD_TIMEOUT_MS = 60000;
const STEP_MS = 15000;	 // one navigation or element wait
const EXPECT_MS = 20000; // until the peer's message shows (from the expect line)
const started = Date.now();

const { values: opt } = parseArgs({
	options: {
		base: { type: "string" }, user: { type: "string" }, pw: { type: "string" },
		"peer-jid": { type: "string" },
		chromium: { type: "string", default: "/usr/bin/chromium" },
		screenshots: { type: "string" },
		"no-js": { type: "boolean", default: false },
	},
});

if (!opt.base || !opt.user || !opt.pw || !opt["peer-jid"]) {
	console.error("usage: node m-chromium.mjs --base http://127.0.0.1:PORT --user NAME " +
		"--pw PW --peer-jid JID [--chromium PATH] [--screenshots DIR] [--no-js]");
	process.exit(2);
}
const base = opt.base.replace(/\/+$/, "");
const peer = opt["peer-jid"];
const chatURL = `${base}/m/chat?with=${encodeURIComponent(peer)}`;
// Whether url is the conversation with peer (batond leaves '@' unencoded; both are right).
const isChat = (url) => {
	const u = new URL(url);
	return u.pathname === "/m/chat" && u.searchParams.get("with") === peer;
};

let stage = "start";
let stageAt = started;
const timings = {}; // stage -> ms it took
function setStage(s) {
	timings[stage] = Date.now() - stageAt;
	stage = s;
	stageAt = Date.now();
}
let browser = null;
let page = null;
const checked = []; // one entry per page checked for script and CSP
const log = [];	    // documents loaded, console messages, failed requests

const fail = firstFailure(async (msg) => {
	console.error(`m-chromium: FAILED at stage "${stage}" after ${Date.now() - started} ms: ` +
		msg);
	if (opt.screenshots && page) {
		fs.mkdirSync(opt.screenshots, { recursive: true });
		const png = path.join(opt.screenshots, "m-failed.png");
		const ok = await Promise.race([page.screenshot({ path: png, fullPage: true })
			.then(() => true, () => false), sleep(3000).then(() => false)]);
		const html = await Promise.race([page.content().catch(() => ""), sleep(2000)]);
		fs.writeFileSync(path.join(opt.screenshots, "m-failed.html"), html || "");
		if (ok)
			console.error(`m-chromium: screenshot ${png} (page at ${page.url()})`);
	}
	if (log.length)
		console.error(`---- browser log (last 40 of ${log.length}):\n` +
			log.slice(-40).join("\n"));
	if (browser)
		await Promise.race([browser.close().catch(() => {}), sleep(3000)]);
	console.log(JSON.stringify({ ok: false, stage, error: msg }));
	process.exit(1);
});
failAfter(HARD_TIMEOUT_MS, fail);

function check(cond, what) {
	if (!cond)
		throw new Error(what);
}

// Saves the current page as DIR/NAME.png when --screenshots is given (for a person to look at).
async function shot(name) {
	if (!opt.screenshots)
		return;
	fs.mkdirSync(opt.screenshots, { recursive: true });
	await page.screenshot({ path: path.join(opt.screenshots, `m-${name}.png`), fullPage: true });
}

// The page now shown must have come with a CSP that allows no script (default-src 'none' and no
// script-src to widen it), hold no <script>, no inline event handler and no javascript: URL.
// Chromium's console staying silent would prove nothing; these make script impossible.
async function checkNoScript(resp, name) {
	check(resp, `${name}: no response for the document`);
	const h = await resp.allHeaders();
	const csp = h["content-security-policy"] || "";
	check(/(^|;)\s*default-src 'none'\s*(;|$)/.test(csp),
		`${name}: Content-Security-Policy without default-src 'none': "${csp}"`);
	check(!/script-src/.test(csp), `${name}: CSP allows some script: "${csp}"`);
	const scripts = await page.locator("script").count();
	check(scripts === 0, `${name}: ${scripts} <script> element(s)`);
	const handlers = await page.locator("xpath=//*[@*[starts-with(name(), 'on')]]").count();
	check(handlers === 0, `${name}: ${handlers} element(s) with an on* event handler attribute`);
	const jsurls = await page.locator(
		"xpath=//*[@*[starts-with(translate(normalize-space(.), 'JAVSCRIPT', 'javscript'), " +
		"'javascript:')]]").count();
	check(jsurls === 0, `${name}: ${jsurls} element(s) with a javascript: URL`);
	checked.push({ page: name, status: resp.status(), csp });
}

// Waits for the document navigation that act() starts (a click that submits a form, a reload);
// returns the final response after any redirects (a POST answered 303 gives the GET's response).
async function navigate(act, urlPred) {
	const [resp] = await Promise.all([
		page.waitForResponse((r) => r.request().isNavigationRequest() &&
			r.request().frame() === page.mainFrame() && r.status() < 300 &&
			(!urlPred || urlPred(r.url())), { timeout: STEP_MS }),
		act(),
	]);
	await page.waitForLoadState("domcontentloaded");
	return resp;
}

// The request chain of a response, oldest first: "POST /m/login 303 -> GET /m/ 200".
async function chain(resp) {
	const out = [];
	for (let r = resp.request(); r; r = r.redirectedFrom()) {
		const res = await r.response();
		out.unshift(`${r.method()} ${new URL(r.url()).pathname}${new URL(r.url()).search} ` +
			`${res ? res.status() : "?"}`);
	}
	return out.join(" -> ");
}

// Types like a person: click into the field, then one key at a time.
async function typeInto(loc, text) {
	await loc.click();
	await loc.pressSequentially(text, { delay: 5 });
}

// The next line on stdin, parsed as JSON (the pytest module writes {"expect": TEXT}).
const stdinLines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function readExpect() {
	const next = await Promise.race([stdinLines.next(),
		sleep(EXPECT_MS).then(() => ({ timeout: true }))]);
	if (next.timeout)
		throw new Error(`no {"expect": ...} line on stdin within ${EXPECT_MS} ms`);
	if (next.done)
		throw new Error("stdin closed before an {\"expect\": ...} line");
	const v = JSON.parse(next.value);
	check(typeof v.expect === "string" && v.expect, `bad line on stdin: ${next.value}`);
	return v.expect;
}

const chromium = await loadChromium("m-chromium", opt.chromium);

try {
	setStage("launch chromium");
	browser = await launchChromium(chromium, opt.chromium, STEP_MS);
	const ctx = await browser.newContext({ viewport: { width: 800, height: 600 },
		javaScriptEnabled: !opt["no-js"] });
	page = await ctx.newPage();
	page.setDefaultTimeout(STEP_MS);
	page.on("console", (m) => log.push(`[console ${m.type()}] ${m.text().slice(0, 300)}`));
	page.on("pageerror", (e) => log.push(`[pageerror] ${e.message}`));
	page.on("requestfailed", (r) =>
		log.push(`[requestfailed] ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
	page.on("response", (r) => {
		if (r.request().isNavigationRequest())
			log.push(`[document] ${r.request().method()} ${r.url()} ${r.status()}`);
	});

	// ---- the login form
	setStage("open the login page");
	let resp = await page.goto(`${base}/m/`);
	check(resp.status() === 200, `GET /m/ answered ${resp.status()}`);
	await checkNoScript(resp, "login");
	const user = page.getByLabel("User", { exact: true });
	const pw = page.getByLabel("Password", { exact: true });
	const loginButton = page.getByRole("button", { name: "Log in", exact: true });
	await user.waitFor({ state: "visible" });
	check(await pw.getAttribute("type") === "password", "the password field is not type=password");
	check(await loginButton.isVisible(), "no visible \"Log in\" button");
	await shot("login");

	setStage("log in");
	await typeInto(user, opt.user);
	await typeInto(pw, opt.pw);
	resp = await navigate(() => loginButton.click());
	const loginChain = await chain(resp);
	if (!/^POST \/m\/login 303 -> GET \/m\/ 200$/.test(loginChain)) {
		const said = await page.locator("strong").first().innerText({ timeout: 1000 })
			.catch(() => "");
		throw new Error(`the login went ${loginChain}, not POST /m/login 303 -> GET /m/ 200` +
			(said ? ` (the page says "${said}")` : ""));
	}
	const cookies = await ctx.cookies(`${base}/m/`);
	const sess = cookies.find((c) => c.name === "baton_m");
	check(sess, `no baton_m cookie after the login (cookies: ${cookies.map((c) => c.name)})`);
	check(sess.httpOnly && sess.sameSite === "Strict",
		`baton_m is not HttpOnly and SameSite=Strict: ${JSON.stringify(sess)}`);

	// ---- the contacts page
	setStage("contacts page");
	await checkNoScript(resp, "contacts");
	const h1 = page.locator("h1");
	await h1.filter({ hasText: /^Contacts$/ }).waitFor({ state: "visible" })
		.catch(async () => { throw new Error(`no <h1>Contacts</h1>; h1 is ` +
			`"${await h1.first().textContent().catch(() => "(none)")}"`); });
	const body = (await page.locator("body").innerText());
	check(body.includes(`${opt.user}@`), `the page does not name the user ${opt.user}@...`);
	for (const b of ["Log out", "Join", "Add"])
		check(await page.getByRole("button", { name: b, exact: true }).isVisible(),
			`no visible "${b}" button on the contacts page`);
	for (const l of ["Room", "Nick", "Address"])
		check(await page.getByLabel(l, { exact: true }).isVisible(),
			`no visible field labelled "${l}" on the contacts page`);
	check(await page.getByRole("heading", { name: "Rooms" }).isVisible(),
		"no \"Rooms\" heading on the contacts page");
	const refresh = await page.locator("meta[http-equiv='refresh' i]").getAttribute("content")
		.catch(() => null);
	check(refresh && /^\d+/.test(refresh), "the contacts page does not refresh itself");
	await shot("contacts");

	// ---- the conversation: type and click Send
	setStage("open the conversation");
	resp = await page.goto(chatURL);
	check(resp.status() === 200, `GET ${chatURL} answered ${resp.status()}`);
	await checkNoScript(resp, "chat");
	check(await page.locator("h1").first().innerText() === peer,
		`the conversation's heading is not ${peer}`);
	const chatRefresh = await page.locator("meta[http-equiv='refresh' i]")
		.getAttribute("content").catch(() => null);
	check(chatRefresh && /^\d+/.test(chatRefresh), "the conversation does not refresh itself");

	setStage("send");
	const sent = `hello from Chromium <i>&amp;</i> "${Date.now()}"`;
	const ta = page.locator("textarea[name='body']");
	await typeInto(ta, sent);
	check(await ta.inputValue() === sent,
		`the textarea holds "${await ta.inputValue()}" (a refresh while typing?)`);
	resp = await navigate(() => page.getByRole("button", { name: "Send", exact: true }).click());
	const sendChain = await chain(resp);
	check(/^POST \/m\/send 303 -> GET \S+ 200$/.test(sendChain) && isChat(resp.url()),
		`sending went ${sendChain}, not POST /m/send 303 -> GET /m/chat?with=PEER 200`);
	await checkNoScript(resp, "chat after send");
	await page.locator("p.out", { hasText: sent }).first().waitFor({ state: "visible" })
		.catch(() => { throw new Error(`our message "${sent}" is not shown after Send`); });
	check(await page.locator("p.out i").count() === 0, "our message was rendered as HTML");
	check(await ta.inputValue() === "", "the textarea is not empty after sending");
	await shot("sent");
	console.log(JSON.stringify({ stage: "sent", body: sent }));

	// ---- the peer's answer: reload (as a person would) until it shows
	setStage("wait for the expect line on stdin");
	const expect = await readExpect();
	setStage(`reload until "${expect}" shows`);
	const until = Date.now() + EXPECT_MS;
	let reloads = 0;
	const incoming = page.locator("p.in", { hasText: expect });
	for (;;) {
		if (await incoming.count() > 0)
			break;
		if (Date.now() > until)
			throw new Error(`"${expect}" not shown after ${reloads} reloads in ` +
				`${EXPECT_MS} ms; page text:\n${await page.locator("body").innerText()}`);
		await sleep(300);
		// The page's own refresh may navigate at the same moment: that is as good as ours.
		resp = await navigate(() => page.reload({ timeout: STEP_MS }).catch(() => null),
			isChat).catch(() => null);
		if (resp)
			await checkNoScript(resp, `chat reload ${++reloads}`);
	}
	const line = await incoming.first().innerText();
	check(line.endsWith(expect), `the message line reads "${line}"`);
	check(await incoming.first().locator("b, i, script, img").count() === 0,
		"the peer's message was rendered as HTML");
	await shot("received");

	// ---- log out; the session is gone
	setStage("log out");
	resp = await navigate(() => page.getByRole("button", { name: "Log out", exact: true })
		.click());
	const outChain = await chain(resp);
	check(/^POST \/m\/logout 303 -> GET \/m\/\?out=1 200$/.test(outChain),
		`logging out went ${outChain}, not POST /m/logout 303 -> GET /m/?out=1 200`);
	check((await page.content()).includes("You are logged out"), "no logged-out notice");
	await checkNoScript(resp, "after log out");
	await page.getByLabel("User", { exact: true }).waitFor({ state: "visible" })
		.catch(() => { throw new Error("no login form after Log out"); });
	check(await page.getByRole("button", { name: "Log in", exact: true }).isVisible(),
		"no \"Log in\" button after Log out");
	const after = await ctx.cookies(`${base}/m/`);
	check(!after.some((c) => c.name === "baton_m"), "baton_m is still set after Log out");
	await shot("logged-out");

	setStage("back to the conversation after log out");
	resp = await page.goBack({ timeout: STEP_MS });
	check(resp, "the browser went back without a request (a cached page after logout?)");
	check(await page.locator("textarea").count() === 0 &&
		await page.getByLabel("User", { exact: true }).isVisible(),
		`going back to ${page.url()} does not show the login form`);
	check(!(await page.locator("body").innerText()).includes(expect),
		"going back after Log out shows the conversation");
	resp = await page.goto(chatURL);
	await checkNoScript(resp, "chat after log out");
	check(await page.locator("textarea").count() === 0 &&
		await page.getByLabel("User", { exact: true }).isVisible(),
		`${chatURL} does not show the login form after Log out`);

	setStage("the old session cookie after log out");
	await ctx.addCookies([{ name: sess.name, value: sess.value, domain: sess.domain,
		path: sess.path, httpOnly: true, sameSite: "Strict" }]);
	resp = await page.goto(chatURL);
	check(await page.locator("textarea").count() === 0 &&
		await page.getByLabel("User", { exact: true }).isVisible(),
		"the old session cookie still opens the conversation after Log out");

	setStage("close");
	await Promise.race([browser.close(), sleep(5000)]);
	console.log(JSON.stringify({ ok: true, sent, received: expect, reloads,
		pages_checked: checked.length, csp: checked[0].csp, login: loginChain,
		send: sendChain, logout: outChain, js: !opt["no-js"], ms: Date.now() - started,
		timings }));
	process.exit(0);
} catch (e) {
	await fail(e?.message || String(e));
}
