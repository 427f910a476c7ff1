// The control API's routes, in Cloud Hypervisor's style (its vmm/src/api/http):
// a request (method, path, body text) in, a status and a JSON body out. The
// VM is reached only through ControlTarget, which the Machine satisfies, so
// every route and status is testable with a fake target and no HTTP.

import { fileURLToPath } from 'node:url';
import type { BoardDevice } from '../board/board';
import type { MachineState } from '../vmm/machine';
import type { VmConfig } from '../vmm/vm-config';
import type { VmExit } from '../vmm/vm-exit';
import type { VcpuStatValues } from '../../shared/vcpu-stats';
import { TsvmmError } from '../../shared/errors';

/** What the API needs of a VM; the Machine has all of it. */
export interface ControlTarget {
  readonly config: VmConfig;
  readonly state: MachineState;
  readonly devices: { devices(): readonly BoardDevice[] };
  stats(): VcpuStatValues[];
  readonly deviceStats: { served: number; parks: number };
  deviceCounters(): Record<string, Record<string, number>>;
  pause(): Promise<void>;
  resume(): void;
  /** Writes the paused VM into `directory`; resolves with what was written. */
  snapshot(directory: string): Promise<unknown>;
  end(exit: VmExit): void;
}

export interface ApiRequest {
  method: string;
  /** The request target as sent (a query string is ignored). */
  path: string;
  body: string;
}

export interface ApiResponse {
  status: number;
  /** A JSON value; an error is always {"error": "..."}. */
  body: unknown;
  /** The methods a route takes, sent with a 405. */
  allow?: string;
  /** Runs once the answer has gone out: vm.shutdown answers before the VM ends. */
  afterResponse?: () => void;
}

export const API_PREFIX = '/api/v1/';

/** A request the API refuses, with the HTTP status that says why. */
class ApiError extends TsvmmError {
  constructor(readonly status: number, message: string) {
    super('usage', message);
  }
}

type Body = Record<string, unknown>;
type Handler = (target: ControlTarget, body: Body) => ApiResponse | Promise<ApiResponse>;

const PAUSE_FIRST = 'pause it first with PUT /api/v1/vm.pause';

/** Targets with a snapshot being written: until it is done, the VM must stay paused and alive. */
const snapshotting = new WeakSet<ControlTarget>();

function refuseDuringSnapshot(target: ControlTarget, what: string): void {
  if (snapshotting.has(target)) throw new ApiError(409, `a snapshot is being written; ${what} once PUT /api/v1/vm.snapshot has answered`);
}

/** The 409 for a VM that is not running at all (not started, or ending). */
function notLive(state: MachineState): ApiError {
  if (state === 'built') return new ApiError(409, 'the VM has not started yet; retry once it runs');
  return new ApiError(409, `the VM is ${state === 'stopping' ? 'stopping' : 'stopped'}; start a new tsvmm to control another VM`);
}

/** The fields a body may have; any other is a 400 that names it. */
function onlyFields(route: string, body: Body, allowed: readonly string[]): void {
  const unknown = Object.keys(body).find((field) => !allowed.includes(field));
  if (unknown === undefined) return;
  const takes = allowed.length === 0 ? 'takes no fields' : `takes only ${allowed.map((field) => `"${field}"`).join(', ')}`;
  throw new ApiError(400, `${route} ${takes}, got "${unknown}"`);
}

function info(target: ControlTarget): ApiResponse {
  return {
    status: 200,
    body: {
      config: target.config,
      state: target.state,
      vcpus: Array.from({ length: target.config.cpus }, (_, id) => ({ id })),
      devices: target.devices.devices().map(({ id, bus, base, length, irq }) => ({ id, bus, base, length, ...(irq === undefined ? {} : { irq }) })),
    },
  };
}

function counters(target: ControlTarget): ApiResponse {
  return {
    status: 200,
    body: {
      vcpus: target.stats().map((stats, id) => ({ id, ...stats })),
      deviceThread: target.deviceStats,
      devices: target.deviceCounters(),
    },
  };
}

async function pause(target: ControlTarget): Promise<ApiResponse> {
  const state = target.state;
  if (state === 'paused') throw new ApiError(409, 'the VM is already paused; resume it with PUT /api/v1/vm.resume');
  // A pause under way is joined, as Machine.pause() does.
  if (state !== 'running' && state !== 'pausing') throw notLive(state);
  await target.pause();
  return { status: 200, body: { state: target.state } };
}

function resume(target: ControlTarget): ApiResponse {
  refuseDuringSnapshot(target, 'resume');
  const state = target.state;
  if (state === 'running') throw new ApiError(409, `the VM is running, not paused; ${PAUSE_FIRST}`);
  if (state === 'pausing') throw new ApiError(409, 'the VM is still pausing; retry once PUT /api/v1/vm.pause has answered');
  if (state !== 'paused') throw notLive(state);
  target.resume();
  return { status: 200, body: { state: target.state } };
}

/** The directory of a `file:///DIR` destination_url. */
function destinationDirectory(body: Body): string {
  const example = 'such as {"destination_url":"file:///var/tmp/snapshot1"}';
  const url = body.destination_url;
  if (url === undefined) throw new ApiError(400, `vm.snapshot needs "destination_url", ${example}`);
  if (typeof url !== 'string') throw new ApiError(400, `"destination_url" must be a string, ${example}; got ${JSON.stringify(url)}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ApiError(400, `"destination_url" is not a URL: "${url}"; give one ${example}`);
  }
  if (parsed.protocol !== 'file:') throw new ApiError(400, `"destination_url" must be a file:// URL (snapshots go to a local directory), got "${url}"`);
  if (parsed.host !== '' || parsed.search !== '' || parsed.hash !== '') {
    throw new ApiError(400, `"destination_url" must be file:///ABSOLUTE/PATH with no host, query or fragment, got "${url}"`);
  }
  return fileURLToPath(parsed);
}

async function snapshot(target: ControlTarget, body: Body): Promise<ApiResponse> {
  onlyFields('vm.snapshot', body, ['destination_url']);
  const directory = destinationDirectory(body);
  refuseDuringSnapshot(target, 'take the next');
  const state = target.state;
  if (state === 'running' || state === 'pausing') throw new ApiError(409, `a snapshot needs a paused VM; ${PAUSE_FIRST}`);
  if (state !== 'paused') throw notLive(state);
  snapshotting.add(target);
  let result: unknown;
  try {
    result = await target.snapshot(directory);
  } finally {
    snapshotting.delete(target);
  }
  const details = result !== null && typeof result === 'object' && !Array.isArray(result) ? result : {};
  return { status: 200, body: { destination_url: body.destination_url, ...details } };
}

function shutdown(target: ControlTarget): ApiResponse {
  refuseDuringSnapshot(target, 'shut down');
  const state = target.state;
  if (state !== 'running' && state !== 'pausing' && state !== 'paused') throw notLive(state);
  return {
    status: 200,
    body: { state: 'stopping' },
    afterResponse: () => target.end({ kind: 'stopped', cause: { by: 'api' } }),
  };
}

const withoutFields = (route: string, handler: (target: ControlTarget) => ApiResponse | Promise<ApiResponse>): Handler => (target, body) => {
  onlyFields(route, body, []);
  return handler(target);
};

const ROUTES: Record<string, { method: 'GET' | 'PUT'; handle: Handler }> = {
  'vm.info': { method: 'GET', handle: info },
  'vm.counters': { method: 'GET', handle: counters },
  'vm.pause': { method: 'PUT', handle: withoutFields('vm.pause', pause) },
  'vm.resume': { method: 'PUT', handle: withoutFields('vm.resume', resume) },
  'vm.snapshot': { method: 'PUT', handle: snapshot },
  'vm.shutdown': { method: 'PUT', handle: withoutFields('vm.shutdown', shutdown) },
};

/** A PUT body: nothing, or a JSON object. */
function parseBody(text: string): Body {
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ApiError(400, `the request body is not valid JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ApiError(400, 'the request body must be a JSON object (or empty)');
  }
  return parsed as Body;
}

/** The failure's message, with its cause's when it has one: a 500 says why. */
function describeFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error ? error.cause : undefined;
  return cause instanceof Error && !message.includes(cause.message) ? `${message}: ${cause.message}` : message;
}

/** Answers one request; never rejects, and nothing it is sent ends the VM except vm.shutdown. */
export async function handleApiRequest(target: ControlTarget, request: ApiRequest): Promise<ApiResponse> {
  const path = request.path.split('?')[0];
  const name = path.startsWith(API_PREFIX) ? path.slice(API_PREFIX.length) : undefined;
  const route = name !== undefined && Object.hasOwn(ROUTES, name) ? ROUTES[name] : undefined;
  if (!route) {
    const known = Object.keys(ROUTES).map((route) => `${API_PREFIX}${route}`).join(', ');
    return { status: 404, body: { error: `no route ${path}; the API has ${known}` } };
  }
  if (request.method !== route.method) {
    return { status: 405, allow: route.method, body: { error: `${path} takes ${route.method}, not ${request.method}` } };
  }
  try {
    return await route.handle(target, route.method === 'PUT' ? parseBody(request.body) : {});
  } catch (error) {
    if (error instanceof ApiError) return { status: error.status, body: { error: error.message } };
    // A request the machine itself refused (a snapshot directory it cannot use, say) is the caller's to fix.
    const status = error instanceof TsvmmError && (error.kind === 'usage' || error.kind === 'guest-image') ? 400 : 500;
    return { status, body: { error: `${name} failed: ${describeFailure(error)}` } };
  }
}
