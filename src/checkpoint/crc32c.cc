// CRC-32C (Castagnoli polynomial, reflected 0x82F63B78), byte-wise table. The checkpoint is a few
// kilobytes, so a table-driven loop is plenty fast and keeps us free of extra dependencies.

#include <array>
#include <cstdint>
#include <string_view>

#include "accel_dra/checkpoint/checkpoint.h"

namespace accel_dra::checkpoint {
namespace {

constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1U) != 0 ? 0x82F63B78U : 0U);
    table[i] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = MakeTable();

}  // namespace

uint32_t Crc32c(std::string_view data) {
  uint32_t crc = 0xFFFFFFFFU;
  for (char c : data) {
    crc = kTable[(crc ^ static_cast<unsigned char>(c)) & 0xFFU] ^ (crc >> 8);
  }
  return crc ^ 0xFFFFFFFFU;
}

}  // namespace accel_dra::checkpoint
