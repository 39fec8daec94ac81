// Participant page: instructions, practice, sessions with breaks. Every event (start, click,
// choice) goes through one ordered queue and is retried until the server acknowledges it (after
// its commit); a refusal (4xx) is shown. Times are performance.now() in seconds (monotonic).
"use strict";
const TOKEN = location.pathname.split("/").filter(Boolean).pop();
const API = `/api/p/${TOKEN}`;
const RADIUS = 15;
const $ = (id) => document.getElementById(id);
const cv = $("face"), ctx = cv.getContext("2d");
const W = cv.width, H = cv.height;
const mask = offscreen(), layer = offscreen();
const queue = [];
let S = null, T = null, pumping = false, acked = 0;

function offscreen() { return Object.assign(document.createElement("canvas"), { width: W, height: H }); }
function eventId() {
  const a = new Uint8Array(16);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}
const fmt = (s, v) => s.replace(/\{(\w+)\}/g, (m, k) => (k in v ? v[k] : m));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now() / 1000;
const status = (text) => { $("status").textContent = text; };
class Refused extends Error {}

async function request(method, path, body) {
  for (let wait = 100; ; wait = Math.min(wait * 2, 3000)) {
    let res = null;
    try {
      res = await fetch(API + path, { method, cache: "no-store", headers: { "Content-Type": "application/json" },
        body: body && JSON.stringify(body) });
    } catch (e) { /* network down or server restarting: retry */ }
    if (res && res.ok) { status(""); return res.json(); }
    if (res && res.status >= 400 && res.status < 500) {
      const j = await res.json().catch(() => ({}));
      throw new Refused(j.error || res.statusText);
    }
    status(S ? S.texts.offline : "...");
    await sleep(wait);
  }
}

function mark() { document.body.dataset.pending = queue.length; document.body.dataset.acked = acked; }
function send(path, body) {
  return new Promise((resolve, reject) => { queue.push({ path, body, resolve, reject }); mark(); pump(); });
}
async function pump() {
  if (pumping) return;
  pumping = true;
  while (queue.length) {
    const item = queue[0];
    try { item.resolve(await request("POST", item.path, item.body)); acked++; } catch (e) { item.reject(e); }
    queue.shift();
    mark();
  }
  pumping = false;
}

function fail(e) {
  if (T) T.active = false;
  status(fmt(S ? S.texts.error : "{message}", { message: e.message }));
}

function screen(name) {
  $("message").hidden = name !== "message";
  $("task").hidden = name !== "task";
  document.body.dataset.screen = name;
}

function message(text, button, action) {
  screen("message");
  $("text").textContent = text;
  const go = $("go");
  go.hidden = !button;
  go.textContent = button || "";
  go.onclick = () => { go.onclick = null; action().catch(fail); };
}

async function next() {
  document.body.dataset.ready = "0";
  S = await request("GET", "/state");
  document.title = S.texts.title;
  const tr = S.trial;
  if (S.phase === "done") { document.body.dataset.done = "1"; return message(S.texts.done, null); }
  if (S.phase === "instructions") {
    return message(S.texts.instructions, tr.block === 0 ? S.texts.start : S.texts.continue, startTrial);
  }
  if (S.phase === "break") {
    const s = tr.block - 1;
    return message(s === 0 ? S.texts.practice_done : fmt(S.texts.break, { s, S: S.sessions }), S.texts.continue, startTrial);
  }
  return startTrial();
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("image failed to load"));
    img.src = src;
  });
}

function draw() {
  ctx.globalCompositeOperation = "source-over";
  ctx.drawImage(T.blur, 0, 0, W, H);
  const l = layer.getContext("2d");
  l.globalCompositeOperation = "source-over";
  l.clearRect(0, 0, W, H);
  l.drawImage(T.face, 0, 0, W, H);
  l.globalCompositeOperation = "destination-in"; // keep the face only where the mask is uncovered
  l.drawImage(mask, 0, 0);
  ctx.drawImage(layer, 0, 0);
}

function reveal(x, y) {
  const m = mask.getContext("2d");
  m.fillStyle = "#fff";
  m.beginPath();
  m.arc(x + 0.5, y + 0.5, RADIUS, 0, 2 * Math.PI); // pixel (x, y) has its centre at x + 0.5
  m.fill();
  draw();
}

async function startTrial() {
  const tr = S.trial;
  const ack = await send("/start", { event: eventId(), trial: tr.idx });
  const [blur, face] = await Promise.all(["blur", "face"].map((k) => loadImage(`${API}/trial/${tr.idx}/${k}.png`)));
  T = { idx: tr.idx, attempt: ack.attempt, blur, face, active: false };
  mask.getContext("2d").clearRect(0, 0, W, H);
  draw();
  $("progress").textContent = tr.block === 0 ? fmt(S.texts.practice, { n: tr.n, m: tr.m })
    : fmt(S.texts.session, { s: tr.block, S: S.sessions, n: tr.n, m: tr.m });
  ack.buttons.forEach((label, i) => {
    const b = $(i ? "right" : "left");
    b.textContent = S.labels[label];
    b.dataset.label = label;
    b.disabled = false;
  });
  screen("task");
  T.shown = now();
  T.active = true;
  document.body.dataset.trial = tr.idx;
  document.body.dataset.ready = "1";
}

cv.addEventListener("pointerdown", (e) => {
  if (!T || !T.active || !e.isPrimary) return;
  e.preventDefault();
  const r = cv.getBoundingClientRect(); // display-frame pixels whatever the CSS size or zoom
  const x = Math.floor((e.clientX - r.left) * cv.width / r.width);
  const y = Math.floor((e.clientY - r.top) * cv.height / r.height);
  if (x < 0 || y < 0 || x >= cv.width || y >= cv.height) return;
  reveal(x, y);
  send("/click", { event: eventId(), trial: T.idx, attempt: T.attempt, x, y, t: now() }).catch(fail);
});

for (const id of ["left", "right"]) {
  $(id).addEventListener("click", async (e) => {
    if (!T || !T.active) return;
    T.active = false;
    $("left").disabled = $("right").disabled = true;
    document.body.dataset.ready = "0";
    const label = Number(e.currentTarget.dataset.label);
    try {
      await send("/choice", { event: eventId(), trial: T.idx, attempt: T.attempt, label, t: now(), shown: T.shown });
      await next();
    } catch (err) { fail(err); }
  });
}

next().catch(fail);
