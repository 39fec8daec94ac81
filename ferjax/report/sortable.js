
document.querySelectorAll('table.sortable th').forEach(function(th, col){th.addEventListener('click', function(){
var body=th.closest('table').tBodies[0], rows=Array.from(body.rows), up=th.dataset.up!=='1'; th.dataset.up=up?'1':'0';
function key(r){var c=r.cells[th.cellIndex]; return c.dataset.v!==undefined?parseFloat(c.dataset.v):c.textContent;}
rows.sort(function(a,b){var x=key(a),y=key(b); if(typeof x==='number'&&typeof y==='number'){x=isNaN(x)?Infinity:x;
y=isNaN(y)?Infinity:y; return up?x-y:y-x;} return up?String(x).localeCompare(y):String(y).localeCompare(x);});
rows.forEach(function(r){body.appendChild(r);});});});
