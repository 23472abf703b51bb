// A SockJS echo server on the real sockjs-node library (Debian's node-sockjs), as the tests' stand-in
// for a monolith serving SockJS fallbacks. Every message comes back prefixed with NAME.
// Usage: node sockjs_backend.js PORT NAME   (prints "ready PORT")
const http = require('http');
// Debian installs the library and its dependencies under /usr/share/nodejs: run with
// NODE_PATH=/usr/share/nodejs.
const sockjs = require('sockjs');

const [port, name] = [Number(process.argv[2]), process.argv[3]];
const service = sockjs.createServer({ log: () => {} });
service.on('connection', (connection) => {
  connection.on('data', (message) => connection.write(`${name}:${message}`));
});
const server = http.createServer();
service.installHandlers(server, { prefix: '/sockjs' });
server.listen(port, '127.0.0.1', () => console.log(`ready ${server.address().port}`));
