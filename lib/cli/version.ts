/** llama-kv's version, as `llama-kv --version` prints it. */
import { ownVersion } from '../native/backend-packages.js';
import { packageRoot } from '../native/binding.js';

/** The `version` of llama-kv's own package.json (found from this module, as the addon is), or 'unknown' when it cannot be read. */
export function packageVersion(): string {
    try {
        return ownVersion(packageRoot());
    } catch {
        return 'unknown';
    }
}
