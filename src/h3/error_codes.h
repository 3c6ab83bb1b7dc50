// HTTP/3 application error codes (RFC 9114 §8.1, RFC 9204 §6, RFC 9297 §5), shared by h3/ and wt/.
#pragma once

#include <cstdint>
#include <string_view>

namespace wtmesh::h3 {

constexpr uint64_t kH3NoError = 0x100;
constexpr uint64_t kH3GeneralProtocolError = 0x101;
constexpr uint64_t kH3InternalError = 0x102;
constexpr uint64_t kH3StreamCreationError = 0x103;
constexpr uint64_t kH3ClosedCriticalStream = 0x104;
constexpr uint64_t kH3FrameUnexpected = 0x105;
constexpr uint64_t kH3FrameError = 0x106;
constexpr uint64_t kH3ExcessiveLoad = 0x107;
constexpr uint64_t kH3IdError = 0x108;
constexpr uint64_t kH3SettingsError = 0x109;
constexpr uint64_t kH3MissingSettings = 0x10a;
constexpr uint64_t kH3RequestRejected = 0x10b;
constexpr uint64_t kH3RequestCancelled = 0x10c;
constexpr uint64_t kH3RequestIncomplete = 0x10d;
constexpr uint64_t kH3MessageError = 0x10e;
constexpr uint64_t kH3ConnectError = 0x10f;
constexpr uint64_t kH3VersionFallback = 0x110;
constexpr uint64_t kH3DatagramError = 0x33;

constexpr uint64_t kQpackDecompressionFailed = 0x200;
constexpr uint64_t kQpackEncoderStreamError = 0x201;
constexpr uint64_t kQpackDecoderStreamError = 0x202;

// Reserved (GREASE) error codes: 0x1f * N + 0x21 (RFC 9114 §8.1).
constexpr bool is_reserved_error_code(uint64_t code) { return code >= 0x21 && (code - 0x21) % 0x1f == 0; }

// A short name for logs ("H3_NO_ERROR"); "unknown" for anything else.
constexpr std::string_view error_code_name(uint64_t code) {
  switch (code) {
    case kH3NoError:
      return "H3_NO_ERROR";
    case kH3GeneralProtocolError:
      return "H3_GENERAL_PROTOCOL_ERROR";
    case kH3InternalError:
      return "H3_INTERNAL_ERROR";
    case kH3StreamCreationError:
      return "H3_STREAM_CREATION_ERROR";
    case kH3ClosedCriticalStream:
      return "H3_CLOSED_CRITICAL_STREAM";
    case kH3FrameUnexpected:
      return "H3_FRAME_UNEXPECTED";
    case kH3FrameError:
      return "H3_FRAME_ERROR";
    case kH3ExcessiveLoad:
      return "H3_EXCESSIVE_LOAD";
    case kH3IdError:
      return "H3_ID_ERROR";
    case kH3SettingsError:
      return "H3_SETTINGS_ERROR";
    case kH3MissingSettings:
      return "H3_MISSING_SETTINGS";
    case kH3RequestRejected:
      return "H3_REQUEST_REJECTED";
    case kH3RequestCancelled:
      return "H3_REQUEST_CANCELLED";
    case kH3RequestIncomplete:
      return "H3_REQUEST_INCOMPLETE";
    case kH3MessageError:
      return "H3_MESSAGE_ERROR";
    case kH3ConnectError:
      return "H3_CONNECT_ERROR";
    case kH3VersionFallback:
      return "H3_VERSION_FALLBACK";
    case kH3DatagramError:
      return "H3_DATAGRAM_ERROR";
    case kQpackDecompressionFailed:
      return "QPACK_DECOMPRESSION_FAILED";
    case kQpackEncoderStreamError:
      return "QPACK_ENCODER_STREAM_ERROR";
    case kQpackDecoderStreamError:
      return "QPACK_DECODER_STREAM_ERROR";
    default:
      return "unknown";
  }
}

}  // namespace wtmesh::h3
