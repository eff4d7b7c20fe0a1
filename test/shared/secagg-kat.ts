/**
 * @module The known answer of the secure-aggregation mask PRG, checked in Node, workerd and
 * headless Chromium: AES-256-CTR, key 00 01 … 1f, counter block zero, over zero bytes. Computed by
 * OpenSSL (`crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16))` in Node), an
 * implementation independent of each runtime's WebCrypto (BoringSSL in workerd and Chromium).
 */

/** The seed: bytes 0, 1, …, 31. */
export const KAT_SEED = Uint8Array.from({ length: 32 }, (_, i) => i);

/** The first 64 bytes of the keystream, hex. */
export const KAT_FIRST_64 = 'f29000b62a499fd0a9f39a6add2e7780f05d76ae4ab99fe5a6f69b3148c2363d0ebcb5deb52c83bd08a8a935182c9199d24356532881602f809eb383c5ff5d56';

/** SHA-256 of the first 4,096 bytes (1,024 mask words), hex. */
export const KAT_SHA256_4096 = '27c62fcb4234cb268a149432f647d8d2150a0d9e8aeb0dedd3c9d7cd1975bec3';

/** Lowercase hex of bytes. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
