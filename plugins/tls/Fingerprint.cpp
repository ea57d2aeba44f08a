#include "Fingerprint.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace sink::tls {
namespace {

template <typename T> std::string join_decimal(const std::vector<T> &values, bool drop_grease) {
  std::string out;
  for (T v : values) {
    if (drop_grease && is_grease(static_cast<uint16_t>(v))) continue;
    if (!out.empty()) out += '-';
    out += std::to_string(v);
  }
  return out;
}

std::string hex4(uint16_t v) {
  char b[5];
  std::snprintf(b, sizeof b, "%04x", v);
  return b;
}

std::string join_hex4(const std::vector<uint16_t> &values) {
  std::string out;
  for (uint16_t v : values) {
    if (!out.empty()) out += ',';
    out += hex4(v);
  }
  return out;
}

std::vector<uint16_t> without_grease(const std::vector<uint16_t> &v) {
  std::vector<uint16_t> out;
  for (uint16_t x : v)
    if (!is_grease(x)) out.push_back(x);
  return out;
}

std::string digest_hex(const EVP_MD *md, const std::string &text) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!EVP_Digest(text.data(), text.size(), out, &len, md, nullptr)) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) {
    s += kHex[out[i] >> 4];
    s += kHex[out[i] & 15];
  }
  return s;
}

std::string version_code(const ClientHello &h) {
  uint16_t v = h.legacy_version;
  auto versions = without_grease(h.supported_versions);
  if (!versions.empty()) v = *std::max_element(versions.begin(), versions.end());
  switch (v) {
  case 0x0304: return "13";
  case 0x0303: return "12";
  case 0x0302: return "11";
  case 0x0301: return "10";
  case 0x0300: return "s3";
  case 0x0200: return "s2";
  case 0x0100: return "s1";
  default: return "00";
  }
}

std::string alpn_code(const ClientHello &h) {
  if (h.alpn.empty() || h.alpn[0].empty()) return "00";
  const std::string &a = h.alpn[0];
  auto first = static_cast<unsigned char>(a.front()), last = static_cast<unsigned char>(a.back());
  if (std::isalnum(first) && std::isalnum(last))
    return std::string{static_cast<char>(first), static_cast<char>(last)};
  // Non-alphanumeric: the first hex digit of the first byte and the last hex
  // digit of the last byte.
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string{kHex[first >> 4], kHex[last & 15]};
}

std::string two_digits(size_t n) {
  char b[3];
  std::snprintf(b, sizeof b, "%02zu", std::min<size_t>(n, 99));
  return b;
}

} // namespace

std::string md5_hex(const std::string &text) { return digest_hex(EVP_md5(), text); }
std::string sha256_hex(const std::string &text) { return digest_hex(EVP_sha256(), text); }

std::string ja3_string(const ClientHello &h) {
  return std::to_string(h.legacy_version) + "," + join_decimal(h.ciphers, true) + "," +
         join_decimal(h.extensions, true) + "," + join_decimal(h.groups, true) + "," +
         join_decimal(h.point_formats, false);
}

std::string ja4_cipher_hash(const ClientHello &h) {
  auto ciphers = without_grease(h.ciphers);
  if (ciphers.empty()) return "000000000000";
  std::sort(ciphers.begin(), ciphers.end());
  return sha256_hex(join_hex4(ciphers)).substr(0, 12);
}

std::string ja4_extension_hash(const ClientHello &h) {
  std::vector<uint16_t> exts;
  for (uint16_t e : without_grease(h.extensions))
    if (e != 0x0000 && e != 0x0010) exts.push_back(e);
  if (exts.empty()) return "000000000000";
  std::sort(exts.begin(), exts.end());
  std::string text = join_hex4(exts);
  auto sigs = without_grease(h.signature_algorithms);
  if (!sigs.empty()) text += "_" + join_hex4(sigs);
  return sha256_hex(text).substr(0, 12);
}

std::string ja4(const ClientHello &h) {
  auto exts = without_grease(h.extensions);
  bool sni = std::find(exts.begin(), exts.end(), 0x0000) != exts.end();
  return "t" + version_code(h) + (sni ? "d" : "i") + two_digits(without_grease(h.ciphers).size()) +
         two_digits(exts.size()) + alpn_code(h) + "_" + ja4_cipher_hash(h) + "_" + ja4_extension_hash(h);
}

} // namespace sink::tls
