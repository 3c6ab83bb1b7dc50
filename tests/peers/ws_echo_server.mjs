// The local WebSocket service behind `wtmesh http` in tests/peers/websocket_h1.sh: Node's `ws` on
// 127.0.0.1 (a free port), permessage-deflate on, subprotocol "chat" accepted. Prints
// "ws echo listening on PORT" once ready, then one line per connection and per close.
//   text "stream N"   N messages {i, sent: Date.now()} one every 20 ms (streaming, not buffered)
//   text "close me"   closes with 4002 "server says bye"
//   anything else     echoed with its type (text/binary), byte for byte
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: true,
  maxPayload: 8 << 20,
  handleProtocols: (protocols) => (protocols.has('chat') ? 'chat' : false),
});
wss.on('listening', () => console.log(`ws echo listening on ${wss.address().port}`));
wss.on('connection', (ws, req) => {
  console.log(
    `connection ${req.url} protocol=${ws.protocol} xfp=${req.headers['x-forwarded-proto']} ` +
      `host=${req.headers.host} xff=${req.headers['x-forwarded-for']} auth=${req.headers.authorization ? 'yes' : 'no'} ` +
      `cookie=${req.headers.cookie ?? '-'}`,
  );
  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const text = data.toString();
      const m = /^stream (\d+)$/.exec(text);
      if (m) {
        const n = Number(m[1]);
        let i = 0;
        const timer = setInterval(() => {
          ws.send(JSON.stringify({ i, sent: Date.now() }));
          if (++i === n) clearInterval(timer);
        }, 20);
        return;
      }
      if (text === 'close me') {
        ws.close(4002, 'server says bye');
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code, reason) => console.log(`close ${code} ${reason.toString()}`));
  ws.on('error', (e) => console.log(`error ${e.message}`));
});
