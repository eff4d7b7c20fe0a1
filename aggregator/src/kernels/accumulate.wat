;; fedge aggregation kernels, WebAssembly SIMD (128-bit) text source.
;;
;; Compiled by scripts/build-wasm.mjs (npm package `wabt`, SIMD enabled) into accumulate.wasm,
;; which is committed beside this file; a unit test recompiles this source and compares bytes.
;;
;; Memory is imported ("env" "memory") so the host sizes it for one running sum. All pointers are
;; byte offsets into that memory (float32 data needs 4-byte, float64 data 8-byte alignment only);
;; counts are element counts. Nothing here allocates or keeps state between calls.
;;
;; Determinism: every kernel performs exactly the IEEE-754 double operations of the plain-JS
;; fallback in running-sum.ts, in the same order: s = s + w0*f64(u0); s = s + w1*f64(u1); ...
;; (no fused multiply-add, no reassociation; relaxed SIMD is not used), and finalize's
;; out = f32(f64(base) + s*invW). So lane-wise SIMD, the scalar tail, accN for any N, and the JS
;; loops give bit-identical sums for finite inputs.
(module
  (import "env" "memory" (memory 1))

  ;; acc1(s, p0, n, w0): for i < n, s = s + w0*f64(p0[i]).
  (func (export "acc1") (param $s i32) (param $p0 i32) (param $n i32) (param $w0 f64)
    (local $end i32) (local $v0 v128) (local $a v128) (local $b v128) (local $x f64)
    (local.set $v0 (f64x2.splat (local.get $w0)))
    ;; 4 values per step: two f64x2 sums, each update read as two 8-byte halves (load64_zero + promote)
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 3))))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $s) (local.get $end)))
      (loop $v
        (local.set $a (v128.load (local.get $s)))
        (local.set $b (v128.load offset=16 (local.get $s)))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p0))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p0))))))
        (v128.store (local.get $s) (local.get $a))
        (v128.store offset=16 (local.get $s) (local.get $b))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $p0 (i32.add (local.get $p0) (i32.const 16)))
        (br_if $v (i32.lt_u (local.get $s) (local.get $end)))))
    ;; scalar tail (n mod 4 values), same operations
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 3))))
    (block $done
      (br_if $done (i32.ge_u (local.get $s) (local.get $end)))
      (loop $t
        (local.set $x (f64.load (local.get $s)))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w0) (f64.promote_f32 (f32.load (local.get $p0))))))
        (f64.store (local.get $s) (local.get $x))
        (local.set $s (i32.add (local.get $s) (i32.const 8)))
        (local.set $p0 (i32.add (local.get $p0) (i32.const 4)))
        (br_if $t (i32.lt_u (local.get $s) (local.get $end))))))

  ;; acc2(s, p0, p1, n, w0, w1): for i < n, s = s + w0*f64(p0[i]); s = s + w1*f64(p1[i]).
  (func (export "acc2") (param $s i32) (param $p0 i32) (param $p1 i32) (param $n i32) (param $w0 f64) (param $w1 f64)
    (local $end i32) (local $v0 v128) (local $v1 v128) (local $a v128) (local $b v128) (local $x f64)
    (local.set $v0 (f64x2.splat (local.get $w0)))
    (local.set $v1 (f64x2.splat (local.get $w1)))
    ;; 4 values per step: two f64x2 sums, each update read as two 8-byte halves (load64_zero + promote)
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 3))))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $s) (local.get $end)))
      (loop $v
        (local.set $a (v128.load (local.get $s)))
        (local.set $b (v128.load offset=16 (local.get $s)))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p0))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p0))))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v1) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p1))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v1) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p1))))))
        (v128.store (local.get $s) (local.get $a))
        (v128.store offset=16 (local.get $s) (local.get $b))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $p0 (i32.add (local.get $p0) (i32.const 16)))
        (local.set $p1 (i32.add (local.get $p1) (i32.const 16)))
        (br_if $v (i32.lt_u (local.get $s) (local.get $end)))))
    ;; scalar tail (n mod 4 values), same operations
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 3))))
    (block $done
      (br_if $done (i32.ge_u (local.get $s) (local.get $end)))
      (loop $t
        (local.set $x (f64.load (local.get $s)))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w0) (f64.promote_f32 (f32.load (local.get $p0))))))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w1) (f64.promote_f32 (f32.load (local.get $p1))))))
        (f64.store (local.get $s) (local.get $x))
        (local.set $s (i32.add (local.get $s) (i32.const 8)))
        (local.set $p0 (i32.add (local.get $p0) (i32.const 4)))
        (local.set $p1 (i32.add (local.get $p1) (i32.const 4)))
        (br_if $t (i32.lt_u (local.get $s) (local.get $end))))))

  ;; acc3(s, p0, p1, p2, n, w0, w1, w2): for i < n, s = s + w0*f64(p0[i]); s = s + w1*f64(p1[i]); s = s + w2*f64(p2[i]).
  (func (export "acc3") (param $s i32) (param $p0 i32) (param $p1 i32) (param $p2 i32) (param $n i32) (param $w0 f64) (param $w1 f64) (param $w2 f64)
    (local $end i32) (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $a v128) (local $b v128) (local $x f64)
    (local.set $v0 (f64x2.splat (local.get $w0)))
    (local.set $v1 (f64x2.splat (local.get $w1)))
    (local.set $v2 (f64x2.splat (local.get $w2)))
    ;; 4 values per step: two f64x2 sums, each update read as two 8-byte halves (load64_zero + promote)
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 3))))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $s) (local.get $end)))
      (loop $v
        (local.set $a (v128.load (local.get $s)))
        (local.set $b (v128.load offset=16 (local.get $s)))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p0))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p0))))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v1) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p1))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v1) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p1))))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v2) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p2))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v2) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p2))))))
        (v128.store (local.get $s) (local.get $a))
        (v128.store offset=16 (local.get $s) (local.get $b))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $p0 (i32.add (local.get $p0) (i32.const 16)))
        (local.set $p1 (i32.add (local.get $p1) (i32.const 16)))
        (local.set $p2 (i32.add (local.get $p2) (i32.const 16)))
        (br_if $v (i32.lt_u (local.get $s) (local.get $end)))))
    ;; scalar tail (n mod 4 values), same operations
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 3))))
    (block $done
      (br_if $done (i32.ge_u (local.get $s) (local.get $end)))
      (loop $t
        (local.set $x (f64.load (local.get $s)))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w0) (f64.promote_f32 (f32.load (local.get $p0))))))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w1) (f64.promote_f32 (f32.load (local.get $p1))))))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w2) (f64.promote_f32 (f32.load (local.get $p2))))))
        (f64.store (local.get $s) (local.get $x))
        (local.set $s (i32.add (local.get $s) (i32.const 8)))
        (local.set $p0 (i32.add (local.get $p0) (i32.const 4)))
        (local.set $p1 (i32.add (local.get $p1) (i32.const 4)))
        (local.set $p2 (i32.add (local.get $p2) (i32.const 4)))
        (br_if $t (i32.lt_u (local.get $s) (local.get $end))))))

  ;; acc4(s, p0, p1, p2, p3, n, w0, w1, w2, w3): for i < n, s = s + w0*f64(p0[i]); s = s + w1*f64(p1[i]); s = s + w2*f64(p2[i]); s = s + w3*f64(p3[i]).
  (func (export "acc4") (param $s i32) (param $p0 i32) (param $p1 i32) (param $p2 i32) (param $p3 i32) (param $n i32) (param $w0 f64) (param $w1 f64) (param $w2 f64) (param $w3 f64)
    (local $end i32) (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128) (local $a v128) (local $b v128) (local $x f64)
    (local.set $v0 (f64x2.splat (local.get $w0)))
    (local.set $v1 (f64x2.splat (local.get $w1)))
    (local.set $v2 (f64x2.splat (local.get $w2)))
    (local.set $v3 (f64x2.splat (local.get $w3)))
    ;; 4 values per step: two f64x2 sums, each update read as two 8-byte halves (load64_zero + promote)
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 3))))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $s) (local.get $end)))
      (loop $v
        (local.set $a (v128.load (local.get $s)))
        (local.set $b (v128.load offset=16 (local.get $s)))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p0))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v0) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p0))))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v1) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p1))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v1) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p1))))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v2) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p2))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v2) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p2))))))
        (local.set $a (f64x2.add (local.get $a) (f64x2.mul (local.get $v3) (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p3))))))
        (local.set $b (f64x2.add (local.get $b) (f64x2.mul (local.get $v3) (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p3))))))
        (v128.store (local.get $s) (local.get $a))
        (v128.store offset=16 (local.get $s) (local.get $b))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $p0 (i32.add (local.get $p0) (i32.const 16)))
        (local.set $p1 (i32.add (local.get $p1) (i32.const 16)))
        (local.set $p2 (i32.add (local.get $p2) (i32.const 16)))
        (local.set $p3 (i32.add (local.get $p3) (i32.const 16)))
        (br_if $v (i32.lt_u (local.get $s) (local.get $end)))))
    ;; scalar tail (n mod 4 values), same operations
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 3))))
    (block $done
      (br_if $done (i32.ge_u (local.get $s) (local.get $end)))
      (loop $t
        (local.set $x (f64.load (local.get $s)))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w0) (f64.promote_f32 (f32.load (local.get $p0))))))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w1) (f64.promote_f32 (f32.load (local.get $p1))))))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w2) (f64.promote_f32 (f32.load (local.get $p2))))))
        (local.set $x (f64.add (local.get $x) (f64.mul (local.get $w3) (f64.promote_f32 (f32.load (local.get $p3))))))
        (f64.store (local.get $s) (local.get $x))
        (local.set $s (i32.add (local.get $s) (i32.const 8)))
        (local.set $p0 (i32.add (local.get $p0) (i32.const 4)))
        (local.set $p1 (i32.add (local.get $p1) (i32.const 4)))
        (local.set $p2 (i32.add (local.get $p2) (i32.const 4)))
        (local.set $p3 (i32.add (local.get $p3) (i32.const 4)))
        (br_if $t (i32.lt_u (local.get $s) (local.get $end))))))

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

  ;; madd(s, p, n): s[i] = s[i] + p[i] (mod 2^32) for i < n, over uint32 words (secure aggregation's ring):
  ;; s and p 4-byte aligned; 8 words per step, then a scalar tail. Integer arithmetic: exact.
  (func (export "madd") (param $s i32) (param $p i32) (param $n i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $s) (local.get $end)))
      (loop $v
        (v128.store (local.get $s) (i32x4.add (v128.load (local.get $s)) (v128.load (local.get $p))))
        (v128.store offset=16 (local.get $s) (i32x4.add (v128.load offset=16 (local.get $s)) (v128.load offset=16 (local.get $p))))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $p (i32.add (local.get $p) (i32.const 32)))
        (br_if $v (i32.lt_u (local.get $s) (local.get $end)))))
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const 7)) (i32.const 2))))
    (block $done
      (br_if $done (i32.ge_u (local.get $s) (local.get $end)))
      (loop $t
        (i32.store (local.get $s) (i32.add (i32.load (local.get $s)) (i32.load (local.get $p))))
        (local.set $s (i32.add (local.get $s) (i32.const 4)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br_if $t (i32.lt_u (local.get $s) (local.get $end))))))

  ;; msub(s, p, n): s[i] = s[i] - p[i] (mod 2^32) for i < n, over uint32 words (secure aggregation's ring):
  ;; s and p 4-byte aligned; 8 words per step, then a scalar tail. Integer arithmetic: exact.
  (func (export "msub") (param $s i32) (param $p i32) (param $n i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $s) (local.get $end)))
      (loop $v
        (v128.store (local.get $s) (i32x4.sub (v128.load (local.get $s)) (v128.load (local.get $p))))
        (v128.store offset=16 (local.get $s) (i32x4.sub (v128.load offset=16 (local.get $s)) (v128.load offset=16 (local.get $p))))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $p (i32.add (local.get $p) (i32.const 32)))
        (br_if $v (i32.lt_u (local.get $s) (local.get $end)))))
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const 7)) (i32.const 2))))
    (block $done
      (br_if $done (i32.ge_u (local.get $s) (local.get $end)))
      (loop $t
        (i32.store (local.get $s) (i32.sub (i32.load (local.get $s)) (i32.load (local.get $p))))
        (local.set $s (i32.add (local.get $s) (i32.const 4)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br_if $t (i32.lt_u (local.get $s) (local.get $end))))))

  ;; acc_f16(s, p, n, w): for i < n, s = s + w*f64(half(p[i])), p pointing at float16 bits. The
  ;; half → float32 conversion is exact for every finite half: its exponent and mantissa bits
  ;; shifted into float32 position, times 2^112 (which also turns subnormal halves into their
  ;; float32 value), then the sign bit. Non-finite halves are refused before anything is summed.
  (func (export "acc_f16") (param $s i32) (param $p i32) (param $n i32) (param $w f64)
    (local $end i32) (local $vw v128) (local $h v128) (local $x v128) (local $a v128) (local $b v128)
    (local $m v128) (local $k v128) (local $sg v128) (local $y f32) (local $hs i32)
    (local.set $vw (f64x2.splat (local.get $w)))
    (local.set $m (i32x4.splat (i32.const 0x7fff)))
    (local.set $sg (i32x4.splat (i32.const 0x8000)))
    (local.set $k (f32x4.splat (f32.const 0x1p112)))
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 3))))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $s) (local.get $end)))
      (loop $v
        (local.set $h (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $p))))
        (local.set $x
          (v128.or
            (f32x4.mul (i32x4.shl (v128.and (local.get $h) (local.get $m)) (i32.const 13)) (local.get $k))
            (i32x4.shl (v128.and (local.get $h) (local.get $sg)) (i32.const 16))))
        (local.set $a (f64x2.add (v128.load (local.get $s)) (f64x2.mul (local.get $vw) (f64x2.promote_low_f32x4 (local.get $x)))))
        (local.set $b (f64x2.add (v128.load offset=16 (local.get $s))
          (f64x2.mul (local.get $vw) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))))
        (v128.store (local.get $s) (local.get $a))
        (v128.store offset=16 (local.get $s) (local.get $b))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (br_if $v (i32.lt_u (local.get $s) (local.get $end)))))
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 3))))
    (block $done
      (br_if $done (i32.ge_u (local.get $s) (local.get $end)))
      (loop $t
        (local.set $hs (i32.load16_u (local.get $p)))
        (local.set $y
          (f32.reinterpret_i32
            (i32.or
              (i32.reinterpret_f32 (f32.mul (f32.reinterpret_i32 (i32.shl (i32.and (local.get $hs) (i32.const 0x7fff)) (i32.const 13))) (f32.const 0x1p112)))
              (i32.shl (i32.and (local.get $hs) (i32.const 0x8000)) (i32.const 16)))))
        (f64.store (local.get $s) (f64.add (f64.load (local.get $s)) (f64.mul (local.get $w) (f64.promote_f32 (local.get $y)))))
        (local.set $s (i32.add (local.get $s) (i32.const 8)))
        (local.set $p (i32.add (local.get $p) (i32.const 2)))
        (br_if $t (i32.lt_u (local.get $s) (local.get $end))))))

  ;; acc_i8(s, p, sc, n, w): for i < n, s = s + w*f64(f32(p[i]) * sc[i >> 8]), p pointing at int8
  ;; values and sc at float32 scales, one per block of 256 (p and s block-aligned). The product is
  ;; float32 (exact int8 × float32, rounded once), as the JS kernel's Math.fround(q * scale).
  (func (export "acc_i8") (param $s i32) (param $p i32) (param $sc i32) (param $n i32) (param $w f64)
    (local $i i32) (local $end i32) (local $vw v128) (local $x v128) (local $a v128) (local $b v128)
    (local.set $vw (f64x2.splat (local.get $w)))
    (local.set $end (i32.and (local.get $n) (i32.const -4)))
    (block $vdone
      (br_if $vdone (i32.ge_u (local.get $i) (local.get $end)))
      (loop $v
        (local.set $x
          (f32x4.mul
            (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (i16x8.extend_low_i8x16_s (v128.load32_zero (local.get $p)))))
            (f32x4.splat (f32.load (i32.add (local.get $sc) (i32.shl (i32.shr_u (local.get $i) (i32.const 8)) (i32.const 2)))))))
        (local.set $a (f64x2.add (v128.load (local.get $s)) (f64x2.mul (local.get $vw) (f64x2.promote_low_f32x4 (local.get $x)))))
        (local.set $b (f64x2.add (v128.load offset=16 (local.get $s))
          (f64x2.mul (local.get $vw) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x))))))
        (v128.store (local.get $s) (local.get $a))
        (v128.store offset=16 (local.get $s) (local.get $b))
        (local.set $s (i32.add (local.get $s) (i32.const 32)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br_if $v (i32.lt_u (local.get $i) (local.get $end)))))
    (block $done
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (loop $t
        (f64.store (local.get $s)
          (f64.add (f64.load (local.get $s))
            (f64.mul (local.get $w)
              (f64.promote_f32
                (f32.mul (f32.convert_i32_s (i32.load8_s (local.get $p)))
                  (f32.load (i32.add (local.get $sc) (i32.shl (i32.shr_u (local.get $i) (i32.const 8)) (i32.const 2)))))))))
        (local.set $s (i32.add (local.get $s) (i32.const 8)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $t (i32.lt_u (local.get $i) (local.get $n))))))
)
