# node-gyp entry point for tools that only know node-gyp (e.g. electron-rebuild,
# `npm rebuild` with a custom toolchain). It does no compiling of its own: it runs
# the same CMake build as `npm run build` (scripts/build.mjs -> cmake-js ->
# CMakeLists.txt) in node-gyp's intermediate directory and copies the addon to
# build/Release, where node-gyp-build finds it.
{
  "targets": [
    {
      "target_name": "llama_kv",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_build",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["<(PRODUCT_DIR)/llama_kv.node"],
          "action": ["node", "scripts/build.mjs", "--build-dir", "<(INTERMEDIATE_DIR)/cmake", "--out", "<(PRODUCT_DIR)"]
        }
      ]
    }
  ]
}
