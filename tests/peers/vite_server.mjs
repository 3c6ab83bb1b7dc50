// A Vite dev server (npm vite, tests/peers/package.json) as the local service of
// tests/peers/websocket_vite.sh: serves ROOT on 127.0.0.1 (a free port), HMR over its WebSocket on the
// same port, any *.localhost Host allowed. Prints "vite listening on PORT" once ready.
//   node vite_server.mjs ROOT
import net from 'node:net';
import { createServer } from 'vite';

const root = process.argv[2];
const port = await new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const server = await createServer({
  root,
  configFile: false,
  logLevel: 'info',
  clearScreen: false,
  server: { host: '127.0.0.1', port, strictPort: true, allowedHosts: ['.localhost'] },
});
await server.listen();
console.log(`vite listening on ${port}`);
