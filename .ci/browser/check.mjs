// A real browser against a live rtchat (run by .ci/docs-checks; RTCHAT_BASE is its URL):
//   1. /docs: log in through Swagger UI's "Authorize" (OAuth2 password flow against
//      /auth/login), send a message with "Try it out" and see 201;
//   2. /: two users, each in their own browser context, register, open a chat and talk to
//      each other live over the WebSocket; then the v2 features: a green dot for the online
//      partner, a reply with its quote ("deleted message" once the original is gone), a
//      reaction added from the picker and clicked by the other user, "seen by" under the last
//      message, the @ badge of an unread mention, a search whose result opens its chat, and
//      "last seen" once the partner has gone.
// Every wait has a timeout; any request that leaves 127.0.0.1, any uncaught page error and
// any Content-Security-Policy violation fails the check. Exits non-zero on failure.
// RTCHAT_DEMO_DIR=static serves the demo's files (/, /static/app.js, /static/app.css) from
// that directory instead of the ones compiled into rtchat (with rtchat's own headers), to
// check a demo change without rebuilding the server.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.RTCHAT_BASE;
if (!BASE || new URL(BASE).hostname !== "127.0.0.1") {
  console.error("RTCHAT_BASE must be an http://127.0.0.1:PORT URL");
  process.exit(2);
}
/** Any single wait. */
const WAIT_MS = 20_000;
/** The whole check; a hung browser must not hang CI. */
const TOTAL_MS = 240_000;
const watchdog = setTimeout(() => {
  console.error(`browser check: still running after ${TOTAL_MS / 1000} s, giving up`);
  process.exit(1);
}, TOTAL_MS);

const DEMO_DIR = process.env.RTCHAT_DEMO_DIR;
const DEMO_FILES = { "/": "index.html", "/static/app.js": "app.js", "/static/app.css": "app.css" };

const problems = [];
const run = Date.now().toString(36);
const PASSWORD = "correct horse battery";

function step(text) {
  console.log(`  - ${text}`);
}

/** Fails the check on requests off this machine, page errors and CSP violations. */
async function guard(context, label) {
  await context.route("**/*", async (route) => {
    const url = new URL(route.request().url());
    if (url.hostname !== "127.0.0.1") {
      problems.push(`${label}: a request left 127.0.0.1: ${url.href}`);
      return route.abort();
    }
    const file = DEMO_DIR && DEMO_FILES[url.pathname];
    if (file) {
      const response = await route.fetch();
      return route.fulfill({ response, body: readFileSync(join(DEMO_DIR, file)) });
    }
    return route.continue();
  });
  context.on("page", (page) => watchPage(page, label));
}

function watchPage(page, label) {
  page.setDefaultTimeout(WAIT_MS);
  page.setDefaultNavigationTimeout(WAIT_MS);
  page.on("pageerror", (err) => problems.push(`${label}: uncaught error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && /Content.Security.Policy/i.test(msg.text())) {
      problems.push(`${label}: CSP violation: ${msg.text()}`);
    }
  });
  page.on("websocket", (ws) => {
    if (new URL(ws.url()).hostname !== "127.0.0.1") {
      problems.push(`${label}: a WebSocket left 127.0.0.1: ${ws.url()}`);
    }
  });
}

/** A JSON call to the API from the check itself (to arrange what the pages need). */
async function api(method, path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(BASE + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function swaggerUi(browser) {
  console.log("browser: /docs (Swagger UI)");
  const email = `docs-${run}@example.com`;
  await api("POST", "/auth/register", { email, name: "Docs", password: PASSWORD });
  const { access_token: token } = await api("POST", "/auth/login", { email, password: PASSWORD });
  const chat = await api("POST", "/chats", { type: "group", title: "docs", participant_ids: [] }, token);
  step(`arranged: user ${email}, chat ${chat.id}`);

  const context = await browser.newContext();
  await guard(context, "docs");
  const page = await context.newPage();
  await page.goto(`${BASE}/docs`);
  await page.locator(".swagger-ui .info .title").filter({ hasText: "rtchat" }).waitFor();
  step("the spec loaded");

  // Authorize: the OAuth2 password flow posts the form to /auth/login.
  await page.locator(".auth-wrapper button.authorize").click();
  const oauth = page.locator(".auth-container").filter({ hasText: "oauth2Password" });
  await oauth.locator("#oauth_username").fill(email);
  await oauth.locator("#oauth_password").fill(PASSWORD);
  const login = page.waitForResponse((r) => r.url() === `${BASE}/auth/login`);
  await oauth.locator("button.authorize").click();
  const loginStatus = (await login).status();
  if (loginStatus !== 200) throw new Error(`Authorize: /auth/login answered ${loginStatus}`);
  // Authorized: the dialog offers to log out instead.
  await page.locator(".dialog-ux button").filter({ hasText: "Logout" }).waitFor();
  await page.locator(".dialog-ux button.close-modal").click();
  step("logged in through Authorize");

  // Try it out: POST /chats/{chat_id}/messages.
  const op = page.locator("#operations-messages-send_message");
  await op.locator(".opblock-summary").first().click();
  const tryOut = op.locator("button.try-out__btn");
  if ((await tryOut.textContent()).includes("Try it out")) await tryOut.click();
  await op.locator('tr[data-param-name="chat_id"] input').fill(String(chat.id));
  const text = `sent from Swagger UI ${run}`;
  await op.locator("textarea.body-param__text").fill(JSON.stringify({ text, client_id: `docs-${run}` }));
  const sent = page.waitForResponse(
    (r) => r.url() === `${BASE}/chats/${chat.id}/messages` && r.request().method() === "POST",
  );
  await op.locator("button.execute").click();
  const sentResponse = await sent;
  const auth = sentResponse.request().headers().authorization || "";
  if (!auth.startsWith("Bearer ")) throw new Error("Try it out sent no bearer token");
  await op.locator(".live-responses-table .response-col_status").filter({ hasText: "201" }).waitFor();
  step("Try it out: POST /chats/{chat_id}/messages answered 201");

  const { messages } = await api("GET", `/chats/${chat.id}/messages`, undefined, token);
  if (!messages.some((m) => m.text === text)) throw new Error("the message sent from /docs is not in the chat");
  await context.close();
}

/** Registers a user on / in its own browser context; returns its page, context and id. */
async function demoUser(browser, name) {
  const context = await browser.newContext();
  await guard(context, name);
  const page = await context.newPage();
  await page.goto(`${BASE}/`);
  await page.locator("#email").fill(`${name}-${run}@example.com`);
  await page.locator("#password").fill(PASSWORD);
  await page.locator("#name").fill(name);
  await page.locator("#register").click();
  await page.locator('#ws-status[data-state="open"]').waitFor();
  const id = Number(await page.locator("#whoami").getAttribute("data-user-id"));
  step(`${name} registered (#${id}), socket open`);
  return { page, context, id, email: `${name}-${run}@example.com` };
}

/** The `li` of the message with this exact text on `page`. */
function messageItem(page, text) {
  return page.locator("#messages li.message").filter({ has: page.locator(".text", { hasText: text }) }).first();
}

/** Waits until `locator`'s text matches `pattern`. */
async function textMatches(locator, pattern, what) {
  const deadline = Date.now() + WAIT_MS;
  let last = "";
  while (Date.now() < deadline) {
    last = (await locator.textContent({ timeout: WAIT_MS }).catch(() => "")) ?? "";
    if (pattern.test(last)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: expected ${pattern}, the page shows ${JSON.stringify(last)}`);
}

/** Waits until `page` shows a message with this exact text. */
async function seesMessage(page, text) {
  await page.locator("#messages li.message .text").filter({ hasText: text }).first().waitFor();
}

async function send(page, text) {
  await page.locator("#message-text").fill(text);
  await page.locator("#send").click();
}

async function demo(browser) {
  console.log("browser: / (demo chat, two users)");
  const alice = await demoUser(browser, "alice");
  const bob = await demoUser(browser, "bob");

  await alice.page.locator("#new-chat-type").selectOption("private");
  await alice.page.locator("#new-chat-ids").fill(String(bob.id));
  await alice.page.locator("#create-chat").click();
  await alice.page.locator("#chat-title[data-chat-id]").waitFor();
  const id = await alice.page.locator("#chat-title").getAttribute("data-chat-id");
  step(`alice created chat ${id} with bob`);

  // Bob never reloads: the chat reaches him over the socket (create_chat).
  const bobsChat = bob.page.locator(`#chat-list li[data-chat-id="${id}"]`);
  await bobsChat.waitFor();
  await bobsChat.locator("button").click();
  step("the chat appeared live in bob's list");

  const hello = `hello bob ${run}`;
  await send(alice.page, hello);
  await seesMessage(bob.page, hello);
  step("bob saw alice's message live");
  const reply = `hi alice ${run}`;
  await send(bob.page, reply);
  await seesMessage(alice.page, reply);
  step("alice saw bob's reply live");

  for (const who of [alice, bob]) {
    if ((await who.page.locator("#ws-status").getAttribute("data-state")) !== "open") {
      throw new Error("a socket did not stay open");
    }
  }
  await v2(alice, bob, id, hello);
}

/** The v2 features of the demo, on the chat `chatId` that alice and bob just talked in. */
async function v2(alice, bob, chatId, hello) {
  console.log("browser: / (demo v2: presence, replies, reactions, seen by, mentions, search)");
  // Presence: bob is online (from GET /presence when alice opened the chat).
  const bobOnAlicesPage = alice.page.locator(`#chat-members .member[data-user-id="${bob.id}"]`);
  await alice.page.locator(`#chat-members .member[data-user-id="${bob.id}"][data-online="true"] .dot`).waitFor();
  await alice.page.locator(`#chat-list li[data-chat-id="${chatId}"] .dot[data-online="true"]`).waitFor();
  step("alice sees a green dot for bob");

  // A reply: bob answers alice's message; both see the quote.
  await messageItem(bob.page, hello).locator(".reply-button").click();
  await bob.page.locator("#reply-bar:not([hidden])").waitFor();
  const answer = `an answer ${run}`;
  await send(bob.page, answer);
  await bob.page.locator("#reply-bar[hidden]").waitFor({ state: "attached" });
  for (const page of [alice.page, bob.page]) {
    await messageItem(page, answer).locator("blockquote.quote").filter({ hasText: hello }).waitFor();
  }
  step("bob replied; both see the quote of alice's message");

  // A reaction: alice adds 👍 from the picker; bob clicks it to add his, then takes it back.
  await messageItem(alice.page, answer).locator(".react-add").click();
  await messageItem(alice.page, answer).locator('.picker .pick[data-emoji="👍"]').click();
  const bobsThumb = messageItem(bob.page, answer).locator('.reaction[data-emoji="👍"]');
  await textMatches(bobsThumb, /^👍 1$/, "bob's view of alice's reaction");
  await messageItem(alice.page, answer).locator('.reaction.mine[data-emoji="👍"]').waitFor();
  await bobsThumb.click();
  const alicesThumb = messageItem(alice.page, answer).locator('.reaction[data-emoji="👍"]');
  await textMatches(alicesThumb, /^👍 2$/, "alice's view after bob's click");
  await messageItem(bob.page, answer).locator('.reaction.mine[data-emoji="👍"]').waitFor();
  await bobsThumb.click();
  await textMatches(alicesThumb, /^👍 1$/, "alice's view after bob took his back");
  step("alice reacted from the picker; bob's clicks added and removed his (counts live on both pages)");

  // Seen by: alice has the chat open, so she reads bob's answer; bob sees it under it.
  await textMatches(bob.page.locator("#seen-by"), /^Seen by alice$/, "bob's seen-by");
  step('bob sees "Seen by alice" under his answer');

  // A mention while alice looks at another chat: the @ badge and the total.
  await alice.page.locator("#new-chat-type").selectOption("group");
  await alice.page.locator("#new-chat-title").fill(`notes ${run}`);
  await alice.page.locator("#create-chat").click();
  await textMatches(alice.page.locator("#chat-title"), new RegExp(`^notes ${run}`), "alice's new chat");
  const ping = `@alice findme${run} please`;
  await send(bob.page, ping);
  const alicesEntry = alice.page.locator(`#chat-list li[data-chat-id="${chatId}"]`);
  await alicesEntry.locator(".mention-badge").waitFor();
  await textMatches(alicesEntry.locator(".unread"), /^1$/, "alice's unread count");
  await textMatches(alice.page.locator("#unread-total"), /@1/, "alice's unread total");
  step("bob's @alice shows the @ badge in alice's chat list");

  // Search: alice finds the message; the result opens its chat at it.
  await alice.page.locator("#message-search").fill(`findme${run}`);
  await alice.page.locator("#message-search-button").click();
  const hit = alice.page.locator(`#search-results button[data-chat-id="${chatId}"]`).filter({ hasText: ping });
  await hit.waitFor();
  await hit.click();
  await alice.page.locator(`#chat-title[data-chat-id="${chatId}"]`).waitFor();
  await messageItem(alice.page, ping).waitFor();
  await alice.page.locator(`#messages li.message.flash.mentions-me[data-message-id]`).filter({ hasText: ping }).waitFor();
  // Opening it read it: the totals in the top bar are gone.
  await alice.page.locator("#unread-total[hidden]").waitFor({ state: "attached" });
  step("alice's search found bob's message and opened the chat at it, marked as mentioning her; read, the totals went");

  // The original of a reply deleted: the quote says so.
  const { access_token: token } = await api("POST", "/auth/login", { email: alice.email, password: PASSWORD });
  const { messages } = await api("GET", `/chats/${chatId}/messages`, undefined, token);
  const original = messages.find((m) => m.text === hello);
  await api("DELETE", `/chats/${chatId}/messages/${original.id}`, undefined, token);
  await messageItem(bob.page, answer).locator("blockquote.quote.gone").filter({ hasText: "deleted message" }).waitFor();
  step('alice deleted her message; bob\'s quote of it says "deleted message"');

  // Bob leaves: after the grace period alice sees "last seen".
  await bob.context.close();
  await alice.page.locator(`#chat-members .member[data-user-id="${bob.id}"][data-online="false"]`).waitFor();
  await textMatches(bobOnAlicesPage.locator(".last-seen"), /^last seen /, "bob's last seen");
  step('bob closed his page; alice sees "last seen ..." instead of the green dot');
}

let browser;
try {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    timeout: WAIT_MS,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // A document fulfilled from disk has no address, so Chromium would count the page as
      // public and block its socket to 127.0.0.1: only with RTCHAT_DEMO_DIR.
      ...(DEMO_DIR ? ["--disable-features=LocalNetworkAccessChecks"] : []),
    ],
  });
  await swaggerUi(browser);
  await demo(browser);
} catch (err) {
  problems.push(`failed: ${err.stack || err}`);
  // Pictures of every open page, for whoever reads the failure (the file tool shows PNGs).
  const shots = process.env.RTCHAT_BROWSER_SHOTS;
  if (shots && browser) {
    let n = 0;
    for (const context of browser.contexts()) {
      for (const page of context.pages()) {
        const path = `${shots}/page-${++n}.png`;
        await page.screenshot({ path, fullPage: false, timeout: WAIT_MS }).catch(() => {});
        console.error(`  screenshot: ${path}`);
      }
    }
  }
} finally {
  if (browser) await browser.close().catch(() => {});
  clearTimeout(watchdog);
}

if (problems.length > 0) {
  console.error("browser check FAILED:");
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log("browser check: ok");
