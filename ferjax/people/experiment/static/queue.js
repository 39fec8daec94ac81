// The participant page's link to the server. Every event (start, click, choice) goes through one
// ordered queue and is retried until the server acknowledges it (after its commit); a refusal (4xx)
// rejects that event's promise. body.dataset.pending / .acked let tests wait for the queue to drain.
"use strict";
const TOKEN = location.pathname.split("/").filter(Boolean).pop();
const API = `/api/p/${TOKEN}`;
const queue = [];
let pumping = false, acked = 0, offlineText = "...";

class Refused extends Error {}

function eventId() {
  const a = new Uint8Array(16);
  crypto.getRandomValues(a); // not crypto.randomUUID: that needs a secure context, plain-HTTP labs have none
  return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const setStatus = (text) => { document.getElementById("status").textContent = text; };

async function request(method, path, body) {
  for (let wait = 100; ; wait = Math.min(wait * 2, 3000)) {
    let res = null;
    try {
      res = await fetch(API + path, { method, cache: "no-store", headers: { "Content-Type": "application/json" },
        body: body && JSON.stringify(body) });
    } catch (e) { /* network down or server restarting: retry */ }
    if (res && res.ok) { setStatus(""); return res.json(); }
    if (res && res.status >= 400 && res.status < 500) {
      const j = await res.json().catch(() => ({}));
      throw new Refused(j.error || res.statusText);
    }
    setStatus(offlineText);
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

function loadImage(src, tries = 4) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => (tries > 1 ? sleep(500).then(() => loadImage(src, tries - 1)).then(resolve, reject)
      : reject(new Error("image failed to load")));
    img.src = src;
  });
}
