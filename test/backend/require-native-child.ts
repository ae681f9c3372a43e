// Child process for require-native.test.ts: prints what the backend registry and the native-test helper do in this
// environment (SHRINK_NATIVE_ADDON / SHRINK_REQUIRE_NATIVE set by the parent), one JSON line.
import { backend } from '../../src/backend/registry.ts';
import { nativeTestSkip } from '../../src/backend/native/index.ts';

const attempt = (fn: () => unknown): { ok: unknown } | { error: string } => {
  try {
    return { ok: fn() };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
};
console.log(JSON.stringify({ skip: attempt(() => nativeTestSkip()), backend: attempt(() => backend().name) }));
