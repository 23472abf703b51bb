/// The admin listener's `GET /` page: one self-contained HTML document (no external assets, no
/// build step) that shows the process (pid, version, start), listeners, pools and backends and
/// request rates, refreshing itself from `/status` and `/metrics` every few seconds. Backends and
/// pools a reload or DNS removed show while they drain, marked `(removed)`. With a token configured
/// it offers drain, enable and rebalance buttons (none for what was removed: it takes no writes),
/// which ask for the token (kept for the tab's session only).
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
        function parseRequests(metrics) {
          const counts = new Map();
          for (const line of metrics.split("\n")) {
            if (!line.startsWith("junction_requests_total{")) continue;
            const labels = {};
            const body = line.slice(line.indexOf("{") + 1, line.lastIndexOf("}"));
            for (const pair of body.split(",")) {
              const eq = pair.indexOf("=");
              if (eq > 0) labels[pair.slice(0, eq)] = pair.slice(eq + 2, -1);
            }
            const value = Number(line.slice(line.lastIndexOf(" ") + 1));
            const key = labels.route + " " + labels.pool;
            const entry = counts.get(key) || { route: labels.route, pool: labels.pool, ok: 0, client: 0, server: 0, upgrade: 0 };
            const code = labels.code || "";
            if (code === "101") entry.upgrade += value;
            else if (code.startsWith("4")) entry.client += value;
            else if (code.startsWith("5")) entry.server += value;
            else entry.ok += value;
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
          previous = { at, counts };
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
