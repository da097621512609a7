// Run face-api's own age-gender and expression networks in TF.js (CPU backend, node) on the
// 112 x 112 inputs written by bench/attributes.py --dump-inputs, and write their outputs, so
// that tools/convert_faceapi_attributes.py --check-against can compare the ONNX conversion.
//
//   mkdir /tmp/fa && cd /tmp/fa && npm pack @vladmandic/face-api@1.7.15 && tar xzf *.tgz
//   npm install @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0
//   mkdir -p node_modules/@vladmandic && cp -r package node_modules/@vladmandic/face-api
//   cp /path/to/pof/tools/check_faceapi.mjs . && node check_faceapi.mjs inputs.json out.json
import fs from 'fs';
import { createRequire } from 'module';

const require = createRequire(`${process.cwd()}/`);
const tf = require('@tensorflow/tfjs');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

const [inFile, outFile] = process.argv.slice(2);
const modelDir = 'node_modules/@vladmandic/face-api/model';

function weightMap(name) {
  const manifest = JSON.parse(fs.readFileSync(`${modelDir}/${name}-weights_manifest.json`));
  const specs = manifest.flatMap((g) => g.weights);
  const bufs = manifest.flatMap((g) => g.paths.map((p) => fs.readFileSync(`${modelDir}/${p}`)));
  const buf = Buffer.concat(bufs);
  return tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length), specs);
}

await tf.setBackend('cpu');
const ag = new faceapi.AgeGenderNet();
ag.loadFromWeightMap(weightMap('age_gender_model'));
const ex = new faceapi.FaceExpressionNet();
ex.loadFromWeightMap(weightMap('face_expression_model'));

const inputs = JSON.parse(fs.readFileSync(inFile)).inputs;   // N x 112 x 112 x 3, RGB 0-255
const out = { inputs, age: [], gender: [], expression: [] };
for (const img of inputs) {
  const t = tf.tensor3d(img, [112, 112, 3], 'float32');
  const net = new faceapi.NetInput([t]);
  const r = ag.forwardInput(net);
  out.age.push([(await r.age.data())[0]]);
  out.gender.push(Array.from(await r.gender.data()));
  out.expression.push(Array.from(await ex.forwardInput(net).data()));
}
fs.writeFileSync(outFile, JSON.stringify(out));
console.log(`TF.js ${tf.version.tfjs}: ${inputs.length} faces`);
