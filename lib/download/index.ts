/** Models from the network: model URIs resolved to local files, and remote GGUF headers. */
export { resolveModelFile } from './resolve.js';
export { readRemoteGgufMetadata } from './remote-header.js';
export type { DownloadProgress, FetchFunction, RemoteGgufOptions, ResolveModelFileOptions } from './options.js';
