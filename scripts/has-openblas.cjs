// Prints "true" when OpenBLAS headers and library are installed (libopenblas-dev), for binding.gyp's optional
// benchmark target.
'use strict';
const { existsSync } = require('node:fs');
const inc = ['/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/aarch64-linux-gnu/cblas.h', '/usr/include/cblas.h', '/usr/include/openblas/cblas.h'];
const lib = ['/usr/lib/x86_64-linux-gnu/libopenblas.so', '/usr/lib/aarch64-linux-gnu/libopenblas.so', '/usr/lib/libopenblas.so', '/usr/lib64/libopenblas.so'];
process.stdout.write(inc.some(existsSync) && lib.some(existsSync) ? 'true' : 'false');
