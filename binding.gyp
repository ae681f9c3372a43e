{
  "variables": {
    "has_openblas": "<!(node scripts/has-openblas.cjs)"
  },
  "targets": [
    {
      "target_name": "shrink_native",
      "sources": [
        "native/addon.cc",
        "native/pool.cc",
        "native/gemm.cc",
        "native/elementwise.cc",
        "native/reduce.cc",
        "native/nn.cc",
        "native/convert.cc",
        "native/quant.cc",
        "native/sparse.cc",
        "native/codebook.cc",
        "native/linalg.cc",
        "native/fff.cc",
        "native/moe.cc",
        "native/signal.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-math-errno"],
      "cflags_cc!": ["-fno-exceptions"],
      "ldflags": ["-pthread"]
    }
  ],
  "conditions": [
    ["has_openblas=='true'", {
      "targets": [
        {
          "target_name": "shrink_blas_bench",
          "sources": ["native/bench/blas_bench.cc"],
          "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
          "cflags_cc": ["-O3", "-std=c++17"],
          "libraries": ["-lopenblas"]
        }
      ]
    }]
  ]
}
