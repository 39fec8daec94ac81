// The consent form of the public study link. The platform's ids stay in this page's URL until the
// participant agrees: only then does the server make a participant; declining only adds to a count.
"use strict";
const $ = (id) => document.getElementById(id);
const study = location.pathname.split("/").filter(Boolean).pop();
const query = new URLSearchParams(location.search);
const ids = {};
for (const k of ["PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "pid"]) if (query.get(k)) ids[k] = query.get(k);

async function decide(decision) {
  $("agree").disabled = $("decline").disabled = true;
  for (let wait = 200; ; wait = Math.min(wait * 2, 3000)) {
    let res = null;
    try {
      res = await fetch(`/api/s/${study}/consent`, { method: "POST", cache: "no-store",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify({ decision, ...ids }) });
    } catch (e) { /* offline: retry */ }
    if (res && res.ok) return res.json();
    if (res && res.status < 500) throw new Error((await res.json().catch(() => ({}))).error || res.statusText);
    await new Promise((r) => setTimeout(r, wait));
  }
}

function fail(e) { $("status").textContent = e.message; }

$("agree").addEventListener("click", () => decide("agree").then((r) => location.replace(r.url), fail));
$("decline").addEventListener("click", () => decide("decline").then(() => {
  $("consent").hidden = true;
  $("agree").parentElement.hidden = true;
  $("declined").hidden = false;
  document.body.dataset.declined = "1";
}, fail));
