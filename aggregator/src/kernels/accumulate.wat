;; fedge aggregation kernels, WebAssembly SIMD (128-bit) text source.
;;
;; Compiled by scripts/build-wasm.mjs (npm package `wabt`, SIMD enabled) into accumulate.wasm,
;; which is committed beside this file; a unit test recompiles this source and compares bytes.
;;
;; Memory is imported ("env" "memory") so the host sizes it once per running sum.
;; All pointers are byte offsets into that memory; counts are element counts.
;;
;; Layout used by running-sum.ts (the kernels only assume what their comments say):
;;   [0, 8*length)          float64 running sum
;;   [scratch, +4*SLOT)     four float32 staging slots of SLOT_BYTES each; update k of a batch
;;                          is read at u + k*SLOT_BYTES (memarg offset immediates, so one pointer
;;                          walks all four slots).
;;
;; Determinism: every kernel performs exactly the IEEE-754 double operations of the plain-JS
;; fallback, in the same order: s = s + w0*f64(u0); s = s + w1*f64(u1); ... (no FMA, no
;; reassociation), and finalize's out = f32(f64(base) + s*invW). Lane-wise SIMD and the scalar
;; tail therefore give bit-identical results to `sum[i] += w * update[i]` in JS.
(module
  (import "env" "memory" (memory 1))

  ;; Distance in bytes between the staging slots of a batch (16384 float32 = 64 KiB).
  (global (export "SLOT_BYTES") i32 (i32.const 65536))

  ;; acc1(s, u, n, w0): s[i] += w0 * u[i] for i < n.
  (func (export "acc1") (param $s i32) (param $u i32) (param $n i32) (param $w0 f64)
    (local $end i32) (local $v0 v128)
    (local.set $v0 (f64x2.splat (local.get $w0)))
    (local.set $end (i32.add (local.get $u) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $u) (local.get $end)))
      (loop $v
        (v128.store (local.get $s)
          (f64x2.add (v128.load (local.get $s))
            (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $u))))))
        (v128.store offset=16 (local.get $s)
          (f64x2.add (v128.load offset=16 (local.get $s))
            (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $u))))))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $u (i32.add (local.get $u) (i32.const 16)))
        (br_if $v (i32.lt_u (local.get $u) (local.get $end)))))
    (local.set $end (i32.add (local.get $u) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $done
      (br_if $done (i32.ge_u (local.get $u) (local.get $end)))
      (loop $t
        (f64.store (local.get $s)
          (f64.add (f64.load (local.get $s))
            (f64.mul (local.get $w0) (f64.promote_f32 (f32.load (local.get $u))))))
        (local.set $s (i32.add (local.get $s) (i32.const 8)))
        (local.set $u (i32.add (local.get $u) (i32.const 4)))
        (br_if $t (i32.lt_u (local.get $u) (local.get $end))))))

  ;; acc2(s, u, n, w0, w1): s[i] = (s[i] + w0*u0[i]) + w1*u1[i], uk = u + k*SLOT_BYTES.
  (func (export "acc2") (param $s i32) (param $u i32) (param $n i32) (param $w0 f64) (param $w1 f64)
    (local $end i32) (local $v0 v128) (local $v1 v128) (local $a v128) (local $b v128) (local $x f64)
    (local.set $v0 (f64x2.splat (local.get $w0)))
    (local.set $v1 (f64x2.splat (local.get $w1)))
    (local.set $end (i32.add (local.get $u) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $u) (local.get $end)))
      (loop $v
        (local.set $a (v128.load (local.get $s)))
        (local.set $b (v128.load offset=16 (local.get $s)))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $u))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $u))))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v1) (f64x2.promote_low_f32x4 (v128.load64_zero offset=65536 (local.get $u))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v1) (f64x2.promote_low_f32x4 (v128.load64_zero offset=65544 (local.get $u))))))
        (v128.store (local.get $s) (local.get $a))
        (v128.store offset=16 (local.get $s) (local.get $b))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $u (i32.add (local.get $u) (i32.const 16)))
        (br_if $v (i32.lt_u (local.get $u) (local.get $end)))))
    (local.set $end (i32.add (local.get $u) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $done
      (br_if $done (i32.ge_u (local.get $u) (local.get $end)))
      (loop $t
        (local.set $x (f64.load (local.get $s)))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w0) (f64.promote_f32 (f32.load (local.get $u))))))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w1) (f64.promote_f32 (f32.load offset=65536 (local.get $u))))))
        (f64.store (local.get $s) (local.get $x))
        (local.set $s (i32.add (local.get $s) (i32.const 8)))
        (local.set $u (i32.add (local.get $u) (i32.const 4)))
        (br_if $t (i32.lt_u (local.get $u) (local.get $end))))))

  ;; acc3(s, u, n, w0, w1, w2): as acc2 with a third slot.
  (func (export "acc3") (param $s i32) (param $u i32) (param $n i32) (param $w0 f64) (param $w1 f64) (param $w2 f64)
    (local $end i32) (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $a v128) (local $b v128) (local $x f64)
    (local.set $v0 (f64x2.splat (local.get $w0)))
    (local.set $v1 (f64x2.splat (local.get $w1)))
    (local.set $v2 (f64x2.splat (local.get $w2)))
    (local.set $end (i32.add (local.get $u) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $u) (local.get $end)))
      (loop $v
        (local.set $a (v128.load (local.get $s)))
        (local.set $b (v128.load offset=16 (local.get $s)))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $u))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $u))))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v1) (f64x2.promote_low_f32x4 (v128.load64_zero offset=65536 (local.get $u))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v1) (f64x2.promote_low_f32x4 (v128.load64_zero offset=65544 (local.get $u))))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v2) (f64x2.promote_low_f32x4 (v128.load64_zero offset=131072 (local.get $u))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v2) (f64x2.promote_low_f32x4 (v128.load64_zero offset=131080 (local.get $u))))))
        (v128.store (local.get $s) (local.get $a))
        (v128.store offset=16 (local.get $s) (local.get $b))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $u (i32.add (local.get $u) (i32.const 16)))
        (br_if $v (i32.lt_u (local.get $u) (local.get $end)))))
    (local.set $end (i32.add (local.get $u) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $done
      (br_if $done (i32.ge_u (local.get $u) (local.get $end)))
      (loop $t
        (local.set $x (f64.load (local.get $s)))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w0) (f64.promote_f32 (f32.load (local.get $u))))))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w1) (f64.promote_f32 (f32.load offset=65536 (local.get $u))))))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w2) (f64.promote_f32 (f32.load offset=131072 (local.get $u))))))
        (f64.store (local.get $s) (local.get $x))
        (local.set $s (i32.add (local.get $s) (i32.const 8)))
        (local.set $u (i32.add (local.get $u) (i32.const 4)))
        (br_if $t (i32.lt_u (local.get $u) (local.get $end))))))

  ;; acc4(s, u, n, w0, w1, w2, w3): four updates per pass over the sum (one float64
  ;; read-modify-write for four float32 reads), sequential order kept per element.
  (func (export "acc4") (param $s i32) (param $u i32) (param $n i32) (param $w0 f64) (param $w1 f64) (param $w2 f64) (param $w3 f64)
    (local $end i32) (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $a v128) (local $b v128) (local $x f64)
    (local.set $v0 (f64x2.splat (local.get $w0)))
    (local.set $v1 (f64x2.splat (local.get $w1)))
    (local.set $v2 (f64x2.splat (local.get $w2)))
    (local.set $v3 (f64x2.splat (local.get $w3)))
    (local.set $end (i32.add (local.get $u) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $u) (local.get $end)))
      (loop $v
        (local.set $a (v128.load (local.get $s)))
        (local.set $b (v128.load offset=16 (local.get $s)))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $u))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $u))))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v1) (f64x2.promote_low_f32x4 (v128.load64_zero offset=65536 (local.get $u))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v1) (f64x2.promote_low_f32x4 (v128.load64_zero offset=65544 (local.get $u))))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v2) (f64x2.promote_low_f32x4 (v128.load64_zero offset=131072 (local.get $u))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v2) (f64x2.promote_low_f32x4 (v128.load64_zero offset=131080 (local.get $u))))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v3) (f64x2.promote_low_f32x4 (v128.load64_zero offset=196608 (local.get $u))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v3) (f64x2.promote_low_f32x4 (v128.load64_zero offset=196616 (local.get $u))))))
        (v128.store (local.get $s) (local.get $a))
        (v128.store offset=16 (local.get $s) (local.get $b))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $u (i32.add (local.get $u) (i32.const 16)))
        (br_if $v (i32.lt_u (local.get $u) (local.get $end)))))
    (local.set $end (i32.add (local.get $u) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $done
      (br_if $done (i32.ge_u (local.get $u) (local.get $end)))
      (loop $t
        (local.set $x (f64.load (local.get $s)))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w0) (f64.promote_f32 (f32.load (local.get $u))))))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w1) (f64.promote_f32 (f32.load offset=65536 (local.get $u))))))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w2) (f64.promote_f32 (f32.load offset=131072 (local.get $u))))))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w3) (f64.promote_f32 (f32.load offset=196608 (local.get $u))))))
        (f64.store (local.get $s) (local.get $x))
        (local.set $s (i32.add (local.get $s) (i32.const 8)))
        (local.set $u (i32.add (local.get $u) (i32.const 4)))
        (br_if $t (i32.lt_u (local.get $u) (local.get $end))))))

  ;; first_non_finite(p, n) -> index of the first float32 in [p, p+4n) whose exponent bits are
  ;; all ones (NaN, +Inf, -Inf), or -1. Scans 16 floats per step, then pinpoints scalar-wise.
  (func (export "first_non_finite") (param $p i32) (param $n i32) (result i32)
    (local $i i32) (local $q i32) (local $m v128) (local $e i32)
    (local.set $m (i32x4.splat (i32.const 0x7f800000)))
    (local.set $q (local.get $p))
    (local.set $e (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -16)) (i32.const 2))))
    (block $vdone
      (loop $v
        (br_if $vdone (i32.ge_u (local.get $q) (local.get $e)))
        (br_if $vdone
          (v128.any_true
            (v128.or
              (v128.or
                (i32x4.eq (v128.and (v128.load (local.get $q)) (local.get $m)) (local.get $m))
                (i32x4.eq (v128.and (v128.load offset=16 (local.get $q)) (local.get $m)) (local.get $m)))
              (v128.or
                (i32x4.eq (v128.and (v128.load offset=32 (local.get $q)) (local.get $m)) (local.get $m))
                (i32x4.eq (v128.and (v128.load offset=48 (local.get $q)) (local.get $m)) (local.get $m))))))
        (local.set $q (i32.add (local.get $q) (i32.const 64)))
        (br $v)))
    ;; scalar: from the flagged (or tail) block to the end
    (local.set $e (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $t
        (br_if $done (i32.ge_u (local.get $q) (local.get $e)))
        (if (i32.eq (i32.and (i32.load (local.get $q)) (i32.const 0x7f800000)) (i32.const 0x7f800000))
          (then (return (i32.shr_u (i32.sub (local.get $q) (local.get $p)) (i32.const 2)))))
        (local.set $q (i32.add (local.get $q) (i32.const 4)))
        (br $t)))
    (i32.const -1))

  ;; finalize(out, base, s, n, invW): out[i] = f32(f64(base[i]) + s[i]*invW) for i < n.
  ;; out may equal base (in place).
  (func (export "finalize") (param $out i32) (param $base i32) (param $s i32) (param $n i32) (param $invW f64)
    (local $end i32) (local $iw v128) (local $a v128) (local $b v128)
    (local.set $iw (f64x2.splat (local.get $invW)))
    (local.set $end (i32.add (local.get $base) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $base) (local.get $end)))
      (loop $v
        (local.set $a (f64x2.add (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $base)))
                                 (f64x2.mul (v128.load (local.get $s)) (local.get $iw))))
        (local.set $b (f64x2.add (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $base)))
                                 (f64x2.mul (v128.load offset=16 (local.get $s)) (local.get $iw))))
        (v128.store64_lane 0 (local.get $out) (f32x4.demote_f64x2_zero (local.get $a)))
        (v128.store64_lane offset=8 0 (local.get $out) (f32x4.demote_f64x2_zero (local.get $b)))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $base (i32.add (local.get $base) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (br_if $v (i32.lt_u (local.get $base) (local.get $end)))))
    (local.set $end (i32.add (local.get $base) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $done
      (br_if $done (i32.ge_u (local.get $base) (local.get $end)))
      (loop $t
        (f32.store (local.get $out)
          (f32.demote_f64 (f64.add (f64.promote_f32 (f32.load (local.get $base)))
                                   (f64.mul (f64.load (local.get $s)) (local.get $invW)))))
        (local.set $s (i32.add (local.get $s) (i32.const 8)))
        (local.set $base (i32.add (local.get $base) (i32.const 4)))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (br_if $t (i32.lt_u (local.get $base) (local.get $end))))))
)
