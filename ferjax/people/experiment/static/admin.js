// Admin view: the token stays in this page's memory and is sent as a Bearer header.
"use strict";
let token = location.hash.slice(1) || "";
const $ = (id) => document.getElementById(id);

async function call(method, path, body) {
  const res = await fetch(path, { method, headers: { Authorization: `Bearer ${token}`,
    "Content-Type": "application/json" }, body: body && JSON.stringify(body) });
  if (!res.ok) throw new Error((await res.json()).error || res.statusText);
  return res;
}

function show({ participants: rows, counts }) {
  $("counts").textContent = Object.entries(counts).map(([k, v]) => `${k.replace("_", " ")}: ${v}`).join(" \u00b7 ");
  $("rows").replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    const link = `${location.origin}/p/${r.token}`;
    const status = r.completed ? "completed" : r.started ? "in progress" : "not started";
    for (const v of [r.name, link, r.created, r.platform, status, `${r.practice_done}/${r.practice}`, `${r.done}/${r.total}`]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    return tr;
  }));
  $("panel").hidden = false;
  $("status").textContent = "";
}

async function load(method = "GET", body) {
  try { show(await (await call(method, "/api/admin/participants", body)).json()); }
  catch (e) { $("status").textContent = e.message; }
}

$("login").addEventListener("submit", (e) => { e.preventDefault(); token = $("token").value; load(); });
$("add").addEventListener("click", () => load("POST", { n: 1 }));
$("export").addEventListener("click", async () => {
  try {
    const blob = await (await call("GET", "/api/admin/export.zip")).blob();
    const a = Object.assign(document.createElement("a"),
      { href: URL.createObjectURL(blob), download: "experiment-export.zip" });
    a.click();
    URL.revokeObjectURL(a.href);
  } catch (e) { $("status").textContent = e.message; }
});
if (token) load();
