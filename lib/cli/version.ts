/** llama-kv's version, as `llama-kv --version` prints it. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../native/binding.js';

/** The `version` of llama-kv's own package.json (found from this module, as the addon is), or 'unknown' when it cannot be read. */
export function packageVersion(): string {
    try {
        const { version } = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown };
        return typeof version === 'string' ? version : 'unknown';
    } catch {
        return 'unknown';
    }
}
