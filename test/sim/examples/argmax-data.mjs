// A data module for `npm run simulate -- --model ./model.json --data test/sim/examples/argmax-data.mjs`
// (the format: test/sim/user-data.ts). Each client gets its own seeded examples of a small
// classification problem: 4 features in [0, 1), the class is the argmax of the first three
// (3 one-hot classes); 500 more are held out for evaluating each published version.

/** mulberry32: a small seeded generator, so a seed reproduces every client's data. */
function generator(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function examples(n, next) {
  const xs = [];
  const ys = [];
  for (let i = 0; i < n; i++) {
    const x = [next(), next(), next(), next()];
    const c = [0, 1, 2].reduce((best, k) => (x[k] > x[best] ? k : best), 0);
    xs.push(x);
    ys.push([0, 1, 2].map((k) => (k === c ? 1 : 0)));
  }
  return { xs, ys };
}

export default function load({ clients = 6, seed = 1 }) {
  return {
    clients: Array.from({ length: clients }, (_, k) => examples(40 + 10 * k, generator(seed * 1000 + k))),
    test: examples(500, generator(seed * 1000 + 999)),
  };
}
