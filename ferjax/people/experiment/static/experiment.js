// Participant page: browser check, preloading, instructions, practice, sessions with breaks and
// attention checks, debriefing, then the completion redirect. The server decides what comes next
// (GET state); this page only draws it. Times are performance.now() in seconds (monotonic).
"use strict";
const RADIUS = 15;
const $ = (id) => document.getElementById(id);
const cv = $("face"), ctx = cv.getContext("2d");
const W = cv.width, H = cv.height;
const mask = offscreen(), layer = offscreen();
const images = new Map(); // trial idx -> {blur, face}, all loaded before the first trial
let S = null, T = null;

function offscreen() { return Object.assign(document.createElement("canvas"), { width: W, height: H }); }
const fmt = (s, v) => s.replace(/\{(\w+)\}/g, (m, k) => (k in v ? v[k] : m));
const now = () => performance.now() / 1000;

function fail(e) {
  if (T) T.active = false;
  setStatus(fmt(S ? S.texts.error : "{message}", { message: e.message }));
}

function show(name) {
  $("message").hidden = name !== "message";
  $("task").hidden = name !== "task";
  document.body.dataset.screen = name;
}

function message(text, button, action, html = false) {
  show("message");
  $("text")[html ? "innerHTML" : "textContent"] = text; // html: the lab's own debriefing page
  $("text").classList.toggle("html", html);
  const go = $("go");
  go.hidden = !button;
  go.textContent = button || "";
  go.onclick = () => { go.onclick = null; action().catch(fail); };
}

// The window must hold the frame and its buttons: ask to enlarge it (or turn the phone) until it does.
async function checkBrowser() {
  const [w, h] = S.min_viewport;
  while (innerWidth < w || innerHeight < h) {
    document.body.dataset.check = "small";
    message(fmt(S.texts.too_small, { w: innerWidth, h: innerHeight, W: w, H: h }), null);
    document.body.dataset.screen = "check";
    await new Promise((r) => addEventListener("resize", r, { once: true }));
  }
  document.body.dataset.check = "ok";
  await request("POST", "/environment", { user_agent: navigator.userAgent.slice(0, 512),
    screen_w: window.screen.width, screen_h: window.screen.height, viewport_w: innerWidth, viewport_h: innerHeight,
    dpr: devicePixelRatio, touch: matchMedia("(pointer: coarse)").matches });
}

async function preload() {
  const { trials } = await request("GET", "/images");
  const bar = $("loading"), todo = trials.flatMap((i) => ["blur", "face"].map((k) => [i, k]));
  let n = 0;
  message(fmt(S.texts.loading, { n: 0, m: todo.length }), null);
  document.body.dataset.screen = "loading";
  bar.hidden = false;
  bar.max = todo.length;
  const one = async ([i, k]) => {
    const img = await loadImage(`${API}/trial/${i}/${k}.png`);
    images.set(i, { ...images.get(i), [k]: img });
    bar.value = ++n;
    $("text").textContent = fmt(S.texts.loading, { n, m: todo.length });
  };
  for (let k = 0; k < todo.length; k += 6) await Promise.all(todo.slice(k, k + 6).map(one)); // 6 at a time
  bar.hidden = true;
}

async function next() {
  document.body.dataset.ready = "0";
  S = await request("GET", "/state");
  offlineText = S.texts.offline;
  document.title = S.texts.title;
  const tr = S.trial;
  if (S.phase === "done") {
    document.body.dataset.done = "1";
    const url = S.completion_url;
    return message(S.debrief || S.texts.done, url ? S.texts.finish : null, async () => location.assign(url),
      Boolean(S.debrief));
  }
  if (S.phase === "instructions") {
    return message(S.texts.instructions, tr.block === 0 ? S.texts.start : S.texts.continue, startTrial);
  }
  if (S.phase === "break") {
    const s = tr.block - 1;
    return message(s === 0 ? S.texts.practice_done : fmt(S.texts.break, { s, S: S.sessions }), S.texts.continue, startTrial);
  }
  return startTrial();
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
  const img = images.get(tr.idx) || { blur: await loadImage(`${API}/trial/${tr.idx}/blur.png`),
    face: await loadImage(`${API}/trial/${tr.idx}/face.png`) };
  T = { idx: tr.idx, attempt: ack.attempt, blur: img.blur, face: img.face, active: false };
  mask.getContext("2d").clearRect(0, 0, W, H);
  draw();
  const catchTrial = tr.kind === "catch";
  $("progress").textContent = catchTrial ? fmt(S.texts.catch, { label: S.labels[tr.press] })
    : tr.block === 0 ? fmt(S.texts.practice, { n: tr.n, m: tr.m })
      : fmt(S.texts.session, { s: tr.block, S: S.sessions, n: tr.n, m: tr.m });
  $("progress").classList.toggle("catch", catchTrial);
  ack.buttons.forEach((label, i) => {
    const b = $(i ? "right" : "left");
    b.textContent = S.labels[label];
    b.dataset.label = label;
    b.disabled = false;
  });
  show("task");
  T.shown = now();
  T.active = true;
  document.body.dataset.trial = tr.idx;
  document.body.dataset.kind = tr.kind;
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

async function begin() {
  S = await request("GET", "/state");
  offlineText = S.texts.offline;
  if (S.phase !== "done") {
    await checkBrowser();
    await preload();
  }
  await next();
}

begin().catch(fail);
