/** `npm run build:node`: the edge worker's bundle in build/node/ (after `npm run build:wasm`); the supervisor writes its workerd config at start. */
import path from "node:path";
import { buildBundle } from "./bundle";
import { BUNDLE_DIR, ROOT } from "./workerd-config";

buildBundle(path.join(ROOT, "wrangler.toml"), BUNDLE_DIR);
console.log(`edge node bundle in ${path.relative(ROOT, BUNDLE_DIR)}/`);
