/// The page the demo's monolith serves: it opens DDP WebSockets through Junction and shows which
/// ddp-streamer each landed on. Once the first four are connected the title reads
/// `DDP 4 connected: ddp-streamer-1=2 ddp-streamer-2=2` (what a headless browser test looks for).
enum DemoPage {
    static func html(adminPort: Int) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Junction demo</title>
        <style>
        body { font: 15px/1.5 system-ui, sans-serif; margin: 2em auto; max-width: 50em; padding: 0 1em }
        table { border-collapse: collapse } td, th { border: 1px solid #ccc; padding: .3em 1em; text-align: left }
        code { background: #f2f2f2; padding: 0 .25em }
        </style></head>
        <body>
        <h1>Junction demo</h1>
        <p>This page came from the <b>monolith</b> pool. It opens DDP WebSockets on <code>/websocket</code>,
        which Junction routes to the <b>ddp-streamer</b> pool and balances by least connections, where
        open WebSockets count. Open more, close some, and watch them spread.</p>
        <p><button id="more">Open 4 more WebSockets</button> <button id="close">Close all</button></p>
        <table><thead><tr><th>ddp-streamer</th><th>open WebSockets</th></tr></thead><tbody id="counts"></tbody></table>
        <p id="info"></p>
        <p>Junction's admin listener: <a id="status">/status</a> (backends, health, open tunnels) and
        <a id="metrics">/metrics</a> (Prometheus).</p>
        <script>
        const admin = `${location.protocol}//${location.hostname}:\(adminPort)`;
        document.getElementById("status").href = admin + "/status";
        document.getElementById("metrics").href = admin + "/metrics";
        const sockets = [];
        const perBackend = {};
        let connected = 0;

        function render() {
          const rows = Object.keys(perBackend).sort().map((name) => `<tr><td>${name}</td><td>${perBackend[name]}</td></tr>`);
          document.getElementById("counts").innerHTML = rows.join("");
          const open = sockets.filter((ws) => ws.readyState <= 1).length;
          if (connected === open && open > 0) {
            document.title = `DDP ${connected} connected: ` + Object.keys(perBackend).sort().map((name) => `${name}=${perBackend[name]}`).join(" ");
          }
        }

        function openOne() {
          const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/websocket`);
          sockets.push(ws);
          ws.onmessage = (event) => {
            const message = JSON.parse(event.data);
            if (message.server_id !== undefined) {
              ws.send(JSON.stringify({ msg: "connect", version: "1", support: ["1"] }));
            } else if (message.msg === "connected") {
              ws.send(JSON.stringify({ msg: "method", id: "1", method: "whoami", params: [] }));
            } else if (message.msg === "result") {
              ws.backend = message.result.backend;
              perBackend[ws.backend] = (perBackend[ws.backend] || 0) + 1;
              connected += 1;
              render();
            } else if (message.msg === "ping") {
              ws.send(JSON.stringify({ msg: "pong" }));
            }
          };
          ws.onclose = () => {
            if (ws.backend) {
              perBackend[ws.backend] -= 1;
              connected -= 1;
              ws.backend = null;
            }
            render();
          };
          ws.onerror = () => { document.title = "DDP error"; };
        }

        document.getElementById("more").onclick = () => { for (let i = 0; i < 4; i++) openOne(); };
        document.getElementById("close").onclick = () => { sockets.forEach((ws) => ws.close()); };
        fetch("/api/info").then((response) => response.json()).then((info) => {
          document.getElementById("info").textContent =
            `The monolith saw Host ${info.host}, X-Forwarded-For ${info["x-forwarded-for"]}, X-Request-ID ${info["x-request-id"]}.`;
        });
        for (let i = 0; i < 4; i++) openOne();
        </script>
        </body></html>

        """
    }
}
