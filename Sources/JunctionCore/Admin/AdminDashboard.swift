/// The admin listener's `GET /` page: one self-contained HTML document (no external assets, no
/// build step) that shows the process (pid, version, start), listeners, pools and backends and
/// request rates, refreshing itself from `/status` and `/metrics` every few seconds. Backends and
/// pools a reload or DNS removed show while they drain, marked `(removed)`. With a token configured
/// it offers drain, enable and rebalance buttons (none for what was removed: it takes no writes),
/// which ask for the token (kept for the tab's session only).
///
/// The page also keeps what its refreshes saw over the last ten minutes (in the tab's memory only;
/// older samples are dropped by time, so it stays bounded) and draws it as small inline SVG charts,
/// so an attack, a drain or a rebalance shows at a glance: per route requests/s and 429/s (from the
/// growth of `junction_requests_total` between refreshes); per listener what was refused at a limit
/// per second and reason, when `/metrics` has `junction_limited_total` (no chart without it); per
/// pool the open tunnels of each backend (from `/status`). For tests the charts are
/// `svg.chart[data-chart="route:NAME" | "limited:LISTENER" | "pool:NAME"]`, each line a
/// `polyline.series` of kind `requests`, `limited` (429s), `limited-reason` (`data-reason`) or
/// `tunnels` (`data-backend`), whose `data-last` is its latest value.
enum AdminDashboard {
    /// Seconds between refreshes.
    static let refreshSeconds = 5

    /// The page.
    static let html: String = #"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Junction</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
        body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 72em; padding: 0 1em; color: #222 }
        h1 { font-size: 1.4em; margin: 0 0 .2em } h2 { font-size: 1.1em; margin: 1.4em 0 .4em }
        table { border-collapse: collapse; width: 100%; margin-bottom: .6em }
        th, td { border-bottom: 1px solid #ddd; padding: .25em .6em; text-align: left; font-variant-numeric: tabular-nums }
        th { background: #f4f4f4 } td.num, th.num { text-align: right }
        .up { color: #107010 } .down { color: #b00000; font-weight: 600 } .muted { color: #777 }
        #error { color: #b00000 } .draining, .drained { color: #a05a00; font-weight: 600 }
        button { font: inherit; padding: 0 .5em; margin-right: .3em } #action { color: #333 }
        #charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(20em, 1fr)); gap: .8em 1.2em;
          margin-bottom: .6em }
        .chart-box { border: 1px solid #ddd; padding: .3em .6em .2em } .chart-title { font-weight: 600 }
        svg.chart { display: block; width: 100%; height: auto } svg.chart text { font-size: 10px; fill: #777 }
        svg.chart .grid { stroke: #e4e4e4; stroke-width: 1 }
        svg.chart .series { fill: none; stroke-width: 1.5; stroke-linejoin: round }
        .legend { color: #555; font-size: .9em; font-variant-numeric: tabular-nums }
        .legend .item { margin-right: .9em; white-space: nowrap }
        .swatch { display: inline-block; width: .9em; height: .3em; margin-right: .3em; vertical-align: middle }
        </style></head>
        <body>
        <h1>Junction</h1>
        <div id="process" class="muted">pid ?</div>
        <div class="muted">config generation <span id="generation">?</span>, loaded <span id="loaded">?</span>;
        updated <span id="updated">never</span>, every REFRESH s. <span id="error"></span></div>
        <div id="action" class="muted"></div>
        <h2>Listeners</h2>
        <table id="listeners"><thead><tr><th>listener</th><th class="num">open connections</th></tr></thead><tbody></tbody></table>
        <h2>Certificates</h2>
        <table id="certificates"><thead><tr><th>listener</th><th>names</th><th>source</th><th>state</th><th>expires</th><th>next renewal</th><th>last error</th></tr></thead><tbody></tbody></table>
        <h2>Requests per second</h2>
        <table id="rates"><thead><tr><th>route</th><th>pool</th><th class="num">2xx/3xx</th><th class="num">4xx</th><th class="num">5xx</th><th class="num">101 (WebSockets)</th></tr></thead><tbody></tbody></table>
        <h2>Last 10 minutes</h2>
        <div id="charts"></div>
        <div id="pools"></div>
        <script>
        "use strict";
        const REFRESH = REFRESH_SECONDS;
        let previous = null;
        function text(tag, content, cls) {
          const element = document.createElement(tag);
          element.textContent = content;
          if (cls) element.className = cls;
          return element;
        }
        function row(cells) {
          const tr = document.createElement("tr");
          for (const cell of cells) tr.appendChild(cell);
          return tr;
        }
        function fill(tbody, rows) {
          tbody.replaceChildren(...rows);
        }
        // The samples of one metric: each line's labels and value ("name{a=\"x\",b=\"y\"} 12").
        function parseMetric(metrics, name) {
          const found = [];
          for (const line of metrics.split("\n")) {
            if (!line.startsWith(name + "{")) continue;
            const close = line.lastIndexOf("}");
            const labels = {};
            for (const match of line.slice(name.length + 1, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
              labels[match[1]] = match[2].replace(/\\(.)/g, (_, c) => c === "n" ? "\n" : c);
            }
            found.push({ labels, value: Number(line.slice(close + 1).trim().split(" ")[0]) });
          }
          return found;
        }
        function parseRequests(metrics) {
          const counts = new Map();
          for (const { labels, value } of parseMetric(metrics, "junction_requests_total")) {
            const key = labels.route + " " + labels.pool;
            const entry = counts.get(key) ||
              { route: labels.route, pool: labels.pool, ok: 0, client: 0, server: 0, upgrade: 0, all: 0, limited: 0 };
            const code = labels.code || "";
            if (code === "101") entry.upgrade += value;
            else if (code.startsWith("4")) entry.client += value;
            else if (code.startsWith("5")) entry.server += value;
            else entry.ok += value;
            entry.all += value;
            if (code === "429") entry.limited += value;
            counts.set(key, entry);
          }
          return counts;
        }
        // junction_limited_total{listener,reason}: what each listener refused at a limit, if exported.
        function parseLimited(metrics) {
          const counts = new Map();
          for (const { labels, value } of parseMetric(metrics, "junction_limited_total")) {
            const key = labels.listener + " " + labels.reason;
            const entry = counts.get(key) || { listener: labels.listener, reason: labels.reason, value: 0 };
            entry.value += value;
            counts.set(key, entry);
          }
          return counts;
        }
        function token() {
          let value = sessionStorage.getItem("junction-token");
          if (!value) {
            value = prompt("Admin token (the first line of admin.token_file):");
            if (value) sessionStorage.setItem("junction-token", value.trim());
          }
          return value ? value.trim() : null;
        }
        async function write(path, label) {
          const bearer = token();
          if (!bearer) return;
          const answer = await fetch(path, { method: "POST", headers: { "Authorization": "Bearer " + bearer } });
          const body = await answer.text();
          if (answer.status === 401) sessionStorage.removeItem("junction-token");
          document.getElementById("action").textContent = label + ": " + answer.status + " " + body.trim();
          refresh();
        }
        function button(label, path) {
          const element = text("button", label);
          element.className = "write";
          element.addEventListener("click", () => write(path, label));
          return element;
        }
        function rate(now, before, field, seconds) {
          if (!before || seconds <= 0) return "-";
          return Math.max(0, (now[field] - before[field]) / seconds).toFixed(1);
        }
        // The charts: what the last ten minutes' refreshes saw, kept in this page only. Samples
        // older than WINDOW seconds are dropped, so memory stays bounded whatever the refresh rate.
        const WINDOW = 600;
        const samples = [];
        const SVG = "http://www.w3.org/2000/svg";
        const COLOURS = ["rgb(31, 95, 168)", "rgb(16, 112, 16)", "rgb(160, 90, 0)", "rgb(122, 63, 160)",
          "rgb(10, 127, 140)", "rgb(176, 0, 0)", "rgb(85, 85, 85)"];
        const REASONS = { connections: "rgb(160, 90, 0)", tunnels: "rgb(122, 63, 160)", requests: "rgb(176, 0, 0)" };
        // One sample: per route requests/s and 429/s, per listener and reason limited/s (both from
        // the counters' growth since the last refresh), per pool and backend the open tunnels.
        function record(at, seconds, counts, limited, status) {
          const sample = { at, routes: new Map(), limited: new Map(), tunnels: new Map() };
          if (previous && seconds > 0) {
            const perRoute = map => {
              const sums = new Map();
              for (const entry of map.values()) {
                const sum = sums.get(entry.route) || { all: 0, limited: 0 };
                sum.all += entry.all;
                sum.limited += entry.limited;
                sums.set(entry.route, sum);
              }
              return sums;
            };
            const before = perRoute(previous.counts);
            for (const [route, now] of perRoute(counts)) {
              const old = before.get(route) || { all: 0, limited: 0 };
              sample.routes.set(route, { requests: Math.max(0, (now.all - old.all) / seconds),
                limited: Math.max(0, (now.limited - old.limited) / seconds) });
            }
            for (const [key, now] of limited) {
              const old = previous.limited.get(key);
              if (!sample.limited.has(now.listener)) sample.limited.set(now.listener, new Map());
              const rate = Math.max(0, (now.value - (old ? old.value : 0)) / seconds);
              sample.limited.get(now.listener).set(now.reason, rate);
            }
          }
          for (const name of Object.keys(status.pools)) {
            const backends = new Map();
            for (const backend of status.pools[name].backends) {
              backends.set(backend.address, (backends.get(backend.address) || 0) + backend.tunnels);
            }
            sample.tunnels.set(name, backends);
          }
          samples.push(sample);
          while (samples.length > 0 && samples[0].at < at - WINDOW) samples.shift();
        }
        function svg(tag, attributes, content) {
          const element = document.createElementNS(SVG, tag);
          for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
          if (content !== undefined) element.textContent = content;
          return element;
        }
        // The smallest of 1, 2, 5 times a power of ten at or above `value` (1 when nothing is above 0).
        function ceiling(value) {
          if (!(value > 0)) return 1;
          const power = Math.pow(10, Math.floor(Math.log10(value)));
          for (const step of [1, 2, 5, 10]) {
            if (value <= step * power * 1.000001) return Number((step * power).toPrecision(3));
          }
          return value;
        }
        // One small chart: a line per series over the last WINDOW seconds, ending at `at`. A series
        // is { kind, label, colour, value(sample) (undefined: no point), attributes }.
        function chart(id, title, at, series, digits) {
          const left = 34, right = 312, top = 8, bottom = 88, width = right - left;
          const format = value =>
            value === undefined ? "-" : digits ? value.toFixed(digits) : String(Math.round(value));
          const points = series.map(line => samples.flatMap(sample => {
            const value = line.value(sample);
            return value === undefined ? [] : [{ at: sample.at, value }];
          }));
          const max = ceiling(Math.max(0, ...points.flat().map(point => point.value)));
          const picture = svg("svg",
            { "class": "chart", "data-chart": id, viewBox: "0 0 320 104", role: "img", "aria-label": title });
          const middle = (top + bottom) / 2;
          picture.appendChild(svg("line", { "class": "grid", x1: left, x2: right, y1: top, y2: top }));
          picture.appendChild(svg("line",
            { "class": "grid", x1: left, x2: right, y1: middle, y2: middle, "stroke-dasharray": "3 3" }));
          picture.appendChild(svg("line", { "class": "grid", x1: left, x2: right, y1: bottom, y2: bottom }));
          picture.appendChild(svg("text", { "class": "y-max", x: left - 4, y: top + 4, "text-anchor": "end" },
            String(max)));
          picture.appendChild(svg("text", { x: left - 4, y: bottom + 3, "text-anchor": "end" }, "0"));
          picture.appendChild(svg("text", { "class": "x-span", x: left, y: 101 }, "last 10 min"));
          picture.appendChild(svg("text", { x: right, y: 101, "text-anchor": "end" }, "now"));
          const legend = document.createElement("div");
          legend.className = "legend";
          const latest = samples[samples.length - 1];
          series.forEach((line, index) => {
            const xy = points[index].map(point => [left + (point.at - (at - WINDOW)) / WINDOW * width,
              bottom - point.value / max * (bottom - top)]);
            const last = points[index][points[index].length - 1];
            picture.appendChild(svg("polyline", Object.assign({ "class": "series " + line.kind }, line.attributes, {
              stroke: line.colour, "data-last": last ? format(last.value) : "",
              points: xy.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1)).join(" ") })));
            if (xy.length > 0) {
              const [x, y] = xy[xy.length - 1];
              picture.appendChild(svg("circle",
                { "class": "last", cx: x.toFixed(1), cy: y.toFixed(1), r: 2, fill: line.colour }));
            }
            const item = text("span", "", "item");
            const swatch = text("span", "", "swatch");
            swatch.style.background = line.colour;
            item.append(swatch, line.label + " " + format(latest ? line.value(latest) : undefined));
            legend.appendChild(item);
          });
          const box = document.createElement("div");
          box.className = "chart-box";
          box.append(text("div", title, "chart-title"), picture, legend);
          return box;
        }
        function drawCharts(at) {
          const routes = new Set(), listeners = new Map(), pools = new Map();
          for (const sample of samples) {
            for (const route of sample.routes.keys()) routes.add(route);
            for (const [listener, reasons] of sample.limited) {
              if (!listeners.has(listener)) listeners.set(listener, new Set());
              for (const reason of reasons.keys()) listeners.get(listener).add(reason);
            }
            for (const [pool, backends] of sample.tunnels) {
              if (!pools.has(pool)) pools.set(pool, new Set());
              for (const backend of backends.keys()) pools.get(pool).add(backend);
            }
          }
          const boxes = [];
          for (const route of [...routes].sort()) {
            const rates = sample => sample.routes.get(route);
            boxes.push(chart("route:" + route, "Route " + route + ": requests per second", at, [
              { kind: "requests", label: "requests/s", colour: "rgb(31, 95, 168)", attributes: { "data-route": route },
                value: sample => rates(sample) && rates(sample).requests },
              { kind: "limited", label: "429/s", colour: "rgb(176, 0, 0)", attributes: { "data-route": route },
                value: sample => rates(sample) && rates(sample).limited },
            ], 1));
          }
          for (const listener of [...listeners.keys()].sort()) {
            boxes.push(chart("limited:" + listener, "Listener " + listener + ": limited per second", at,
              [...listeners.get(listener)].sort().map((reason, index) => ({
                kind: "limited-reason", label: reason + "/s",
                colour: REASONS[reason] || COLOURS[index % COLOURS.length],
                attributes: { "data-listener": listener, "data-reason": reason },
                value: sample => sample.limited.has(listener) ? sample.limited.get(listener).get(reason) : undefined,
              })), 1));
          }
          for (const pool of [...pools.keys()].sort()) {
            boxes.push(chart("pool:" + pool, "Pool " + pool + ": open WebSockets", at,
              [...pools.get(pool)].sort().map((backend, index) => ({
                kind: "tunnels", label: backend, colour: COLOURS[index % COLOURS.length],
                attributes: { "data-pool": pool, "data-backend": backend },
                value: sample => sample.tunnels.has(pool) ? sample.tunnels.get(pool).get(backend) : undefined,
              })), 0));
          }
          document.getElementById("charts").replaceChildren(...boxes);
        }
        function render(status, metrics) {
          const process = status.process;
          if (process) document.getElementById("process").textContent = "pid " + process.pid + " \u00b7 version " +
            process.version + " \u00b7 started " + new Date(process.started_at * 1000).toLocaleString();
          document.getElementById("generation").textContent = status.config.generation;
          document.getElementById("loaded").textContent = new Date(status.config.loaded_at * 1000).toLocaleString();
          fill(document.querySelector("#listeners tbody"), Object.keys(status.listeners).sort().map(name =>
            row([text("td", name), text("td", status.listeners[name].connections, "num")])));
          const when = seconds => seconds ? new Date(seconds * 1000).toLocaleString() : "";
          fill(document.querySelector("#certificates tbody"), (status.certificates || []).map(c =>
            row([text("td", c.listener), text("td", c.names.join(", ")), text("td", c.source), text("td", c.state),
              text("td", when(c.not_after)), text("td", when(c.next_renewal)), text("td", c.last_error || "")])));
          const at = Date.now() / 1000;
          const counts = parseRequests(metrics);
          const seconds = previous ? at - previous.at : 0;
          fill(document.querySelector("#rates tbody"), [...counts.keys()].sort().map(key => {
            const now = counts.get(key), before = previous && previous.counts.get(key);
            return row([text("td", now.route), text("td", now.pool),
              text("td", rate(now, before, "ok", seconds), "num"), text("td", rate(now, before, "client", seconds), "num"),
              text("td", rate(now, before, "server", seconds), "num"), text("td", rate(now, before, "upgrade", seconds), "num")]);
          }));
          const limited = parseLimited(metrics);
          record(at, seconds, counts, limited, status);
          previous = { at, counts, limited };
          try {
            drawCharts(at);
          } catch (error) {
            document.getElementById("charts").textContent = "cannot draw the charts: " + error;
          }
          const pools = document.getElementById("pools");
          const sections = [];
          let healthy = 0, total = 0, configured = 0;
          for (const name of Object.keys(status.pools).sort()) {
            const pool = status.pools[name];
            const section = document.createElement("section");
            section.className = pool.removed ? "pool removed" : "pool";
            if (!pool.removed) configured += 1;
            section.appendChild(text("h2", "Pool " + name + (pool.removed ? " (removed)" : "")));
            // A removed pool balances nothing: it is listed only while its backends drain.
            const summary = text("div", pool.removed
              ? "removed from the config, " + pool.tunnels + " open WebSockets draining "
              : pool.balance + ", affinity " + pool.affinity + ", " + pool.tunnels + " open WebSockets ", "muted");
            const writes = status.admin && status.admin.writes;
            const poolPath = "/pools/" + encodeURIComponent(name);
            if (writes && !pool.removed) summary.appendChild(button("rebalance " + name, poolPath + "/rebalance"));
            section.appendChild(summary);
            const table = document.createElement("table");
            const headings = ["backend", "configured", "health", "state", "active", "tunnels", "weight", "last check"];
            if (writes) headings.push("control");
            table.appendChild(row(headings.map((h, i) => text("th", h, i >= 4 && i <= 6 ? "num" : ""))));
            for (const backend of pool.backends) {
              // Removed backends show while they drain but count in no total.
              if (!backend.removed) {
                total += 1;
                if (backend.healthy) healthy += 1;
              }
              const check = backend.last_check ? (backend.last_check.passed ? "passed: " : "failed: ") + backend.last_check.detail : "-";
              const tr = row([text("td", backend.address), text("td", backend.configured, "muted"),
                text("td", backend.healthy ? "up" : "down", backend.healthy ? "up" : "down"),
                text("td", backend.state + (backend.removed ? " (removed)" : ""), backend.state),
                text("td", backend.active, "num"), text("td", backend.tunnels, "num"), text("td", backend.weight, "num"),
                text("td", check, "muted")]);
              if (writes) {
                const control = document.createElement("td");
                const backendPath = poolPath + "/backends/" + encodeURIComponent(backend.address);
                // A removed backend leaves by itself once its tunnels are closed: nothing to offer
                // (the writes would answer 409).
                if (backend.removed) {
                  control.textContent = "leaves when its tunnels close";
                  control.className = "muted";
                } else {
                  control.appendChild(backend.state === "active"
                    ? button("drain " + backend.address, backendPath + "/drain")
                    : button("enable " + backend.address, backendPath + "/enable"));
                }
                tr.appendChild(control);
              }
              tr.className = backend.removed ? "backend removed" : "backend";
              table.appendChild(tr);
            }
            section.appendChild(table);
            sections.push(section);
          }
          pools.replaceChildren(...sections);
          document.getElementById("updated").textContent = new Date().toLocaleTimeString();
          document.title = "Junction: " + configured + " pools, " + healthy + "/" + total + " backends up";
        }
        async function refresh() {
          try {
            const [status, metrics] = await Promise.all([
              fetch("/status", { cache: "no-store" }).then(r => r.json()),
              fetch("/metrics", { cache: "no-store" }).then(r => r.text()),
            ]);
            render(status, metrics);
            document.getElementById("error").textContent = "";
          } catch (error) {
            document.getElementById("error").textContent = "cannot reach the admin listener: " + error;
          }
        }
        refresh();
        setInterval(refresh, REFRESH * 1000);
        </script>
        </body></html>
        """#
        .replacing("REFRESH_SECONDS", with: String(refreshSeconds))
        .replacing("every REFRESH s", with: "every \(refreshSeconds) s")
}
