#!/usr/bin/env node
// The echo server of bench/deflate: npm ws's WebSocketServer with
// permessage-deflate (RFC 7692), so that wstether and Node's ws client are
// measured against the same compressing peer.
//
//   node bench/deflate-echo-server.js [--threshold N]
//
// Prints its port on stdout. On stderr, one line each:
//   first-message ID SECONDS      a connection's first message (CLOCK_MONOTONIC,
//                                 as bench/echo-server --stamps)
//   closed ID up U down D messages M extensions E
//                                 when it ends: U and D are the bytes the TCP
//                                 connection carried after the handshake,
//                                 client to server and back (frames as sent)
// It echoes every message and compresses what it sends above --threshold
// bytes (default 32, as wstether), with zlib's defaults (level 6, memLevel 8,
// 15-bit windows) and context takeover, as ws does by default.
'use strict';

const path = require('path');
let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  WebSocket = require(path.join(__dirname, 'node_modules', 'ws'));
}

let threshold = 32;
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--threshold') threshold = Number(argv[++i]);
  else {
    process.stderr.write(`deflate-echo-server: unknown argument '${argv[i]}'\n`);
    process.exit(64);
  }
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const wss = new WebSocket.Server({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 0,
  perMessageDeflate: { threshold },
});
let ids = 0;

wss.on('connection', (ws, req) => {
  const id = ++ids;
  const sock = req.socket;
  // the upgrade request is read and the 101 written: count frames only
  const read0 = sock.bytesRead;
  const written0 = sock.bytesWritten;
  let messages = 0;
  ws.on('message', (data, isBinary) => {
    if (messages++ === 0) process.stderr.write(`first-message ${id} ${now().toFixed(9)}\n`);
    ws.send(data, { binary: isBinary });
  });
  ws.on('close', () => {
    const ext = Object.keys(ws.extensions).join(',') || 'none';
    process.stderr.write(`closed ${id} up ${sock.bytesRead - read0} down ` +
      `${sock.bytesWritten - written0} messages ${messages} extensions ${ext}\n`);
  });
});
wss.on('listening', () => {
  process.stdout.write(`${wss.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
