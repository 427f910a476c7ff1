// The control API's HTTP/1.1 server on a unix socket (node:http, so
// `curl --unix-socket` works). It owns the socket file: created with mode
// 0600, an existing one refused when a live server answers on it and
// replaced when it is stale, removed when the server closes or the process
// exits. A bad request gets its error answer and never reaches the VM.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as nodePath from 'node:path';
import { TsvmmError } from '../../shared/errors';
import { ControlTarget, handleApiRequest } from './routes';

/** Bodies are a few fields; anything larger is refused before it is parsed. */
const MAX_BODY_BYTES = 64 * 1024;
/** sockaddr_un's sun_path is 108 bytes, the terminating NUL included; libuv cuts a longer path short without a word. */
const MAX_SOCKET_PATH_BYTES = 107;
/** Owner read and write only: whoever can connect can stop the VM. */
const SOCKET_UMASK = 0o177;

class ApiSocketError extends TsvmmError {
  constructor(path: string, problem: string, cause?: unknown) {
    super('usage', `--api-socket ${path}: ${problem}`, { step: 'open the API socket', cause });
  }
}

const errnoOf = (error: unknown) => (error as NodeJS.ErrnoException).code ?? 'error';

/** Whether a server accepts connections on the socket at `path` ('stale': nobody listens). */
function probe(path: string): Promise<'live' | 'stale'> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve('live');
    });
    socket.once('error', (error) => {
      if (errnoOf(error) === 'ECONNREFUSED') resolve('stale');
      else reject(new ApiSocketError(path, `cannot tell whether a server owns it (${errnoOf(error)}); remove it or give another path`, error));
    });
  });
}

/** Makes room for the socket at `path`: nothing there, or a stale socket that is removed. */
async function clearPath(path: string): Promise<void> {
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new ApiSocketError(path, `is ${bytes} bytes long; a unix socket path is at most ${MAX_SOCKET_PATH_BYTES}, so give a shorter one`);
  }
  if (path.includes('\0')) throw new ApiSocketError(path, 'contains a NUL byte; give a plain file path');
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(path);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw new ApiSocketError(path, `cannot look at it (${errnoOf(error)}); give a path in a directory you can write`, error);
    // libuv reports a missing directory as EACCES when it binds: say what it is.
    const directory = nodePath.dirname(path);
    if (!fs.existsSync(directory)) throw new ApiSocketError(path, `the directory ${directory} does not exist; create it or give another path`);
    return;
  }
  if (!stat.isSocket()) throw new ApiSocketError(path, 'exists and is not a socket; remove it or give another path');
  if (await probe(path) === 'live') {
    throw new ApiSocketError(path, 'a running server (another tsvmm?) listens on it; stop that one or give another path');
  }
  fs.unlinkSync(path);
}

export class ApiServer {
  private closing?: Promise<void>;
  private readonly removeOnExit = () => this.removeSocketFile();

  private constructor(
    private readonly server: http.Server,
    readonly path: string,
    /** The socket file this server made, so that a file someone put there since is left alone. */
    private readonly inode: number,
  ) {
    process.once('exit', this.removeOnExit);
  }

  /** Listens on `path` for requests to `target`; refuses a path that a live server or another file holds. */
  static async open(path: string, target: ControlTarget): Promise<ApiServer> {
    await clearPath(path);
    const server = http.createServer((request, response) => serve(target, request, response));
    // A request that is not HTTP gets a 400 and its connection closed; the server and the VM go on.
    server.on('clientError', (error, socket) => {
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      const body = `${JSON.stringify({ error: `bad HTTP request: ${(error as NodeJS.ErrnoException).code ?? error.message}` })}\n`;
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) => {
        const code = errnoOf(error);
        reject(code === 'EADDRINUSE'
          ? new ApiSocketError(path, 'another server took this path just now; give another path', error)
          : new ApiSocketError(path, `cannot listen there (${code}); give a path in a directory you can write`, error));
      });
      // listen() binds at once, so the umask covers the socket file's creation and nothing else.
      const umask = process.umask(SOCKET_UMASK);
      try {
        server.listen(path, resolve);
      } finally {
        process.umask(umask);
      }
    });
    // After listening, a server error (EMFILE on accept, ...) must not end the process.
    server.on('error', () => {});
    return new ApiServer(server, path, fs.statSync(path).ino);
  }

  /** Stops listening, ends open connections and removes the socket file. Safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    }).then(() => {
      this.removeSocketFile();
      process.off('exit', this.removeOnExit);
    });
    return this.closing;
  }

  private removeSocketFile(): void {
    try {
      if (fs.lstatSync(this.path).ino === this.inode) fs.unlinkSync(this.path);
    } catch {
      // Gone already (the server's close removes it).
    }
  }
}

function send(response: http.ServerResponse, status: number, body: unknown, allow?: string): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    ...(allow === undefined ? {} : { Allow: allow }),
  });
  response.end(text);
}

function serve(target: ControlTarget, request: http.IncomingMessage, response: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  let size = 0;
  request.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  });
  request.on('end', () => {
    if (size > MAX_BODY_BYTES) {
      send(response, 413, { error: `the request body is ${size} bytes; the API takes at most ${MAX_BODY_BYTES}` });
      return;
    }
    const body = Buffer.concat(chunks).toString('utf8');
    handleApiRequest(target, { method: request.method ?? '', path: request.url ?? '', body }).then((answer) => {
      // 'close' comes after the answer is written, or when the client left: either way it is time.
      if (answer.afterResponse) response.once('close', answer.afterResponse);
      send(response, answer.status, answer.body, answer.allow);
    }, (error: Error) => send(response, 500, { error: `internal error: ${error.message}` }));
  });
}
