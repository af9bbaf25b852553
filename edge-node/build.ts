/** `npm run build:node`: the edge worker's bundle and workerd config in build/node/ (after `npm run build:wasm`). */
import path from "node:path";
import { buildBundle } from "./bundle";
import { BUNDLE_DIR, ROOT } from "./workerd-config";

buildBundle(path.join(ROOT, "wrangler.toml"), BUNDLE_DIR);
console.log(`edge node bundle and workerd config in ${path.relative(ROOT, BUNDLE_DIR)}/`);
