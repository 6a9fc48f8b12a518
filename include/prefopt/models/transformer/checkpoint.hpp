#pragma once
/// \file
/// Checkpoints of the shipped transformer (or any model with the same three members, concept
/// `CheckpointableModel`): the `transformer_config` and the flat parameters in one versioned,
/// checksummed binary file, written atomically (`io/atomic_file.hpp`: a temporary in the same
/// folder, flushed, synced, renamed; a failed save leaves the previous file untouched). Needs only
/// the standard library (no fmt / JSON).
///
/// **Format, version 1.** Every integer little-endian, floats as their IEEE-754 bit pattern:
///
///     offset  bytes  field
///          0      8  magic "PFOPTCKP"
///          8      4  u32 format version (1)
///         12      4  u32 scalar type: bytes per parameter, 4 (float32) or 8 (float64)
///         16      8  i64 config.vocab_size
///         24      8  i64 config.eos
///         32      8  i64 config.max_length
///         40      8  i64 config.d_model
///         48      8  i64 config.num_layers
///         56      8  i64 config.num_heads
///         64      8  i64 config.mlp_hidden
///         72      8  f64 config.init_scale
///         80      8  u64 config.seed
///         88      8  u64 P, the parameter count
///         96   P*s   the parameters, s = 4 or 8 bytes each
///     96+P*s      8  u64 FNV-1a 64 (`data/checksum.hpp`) of every byte before it
///
/// A new `transformer_config` field needs a new format version (a static_assert below fails
/// when the struct's size changes, as a reminder).
///
/// **Errors**, each naming the function, the path and what is wrong:
/// - `prefopt::io_error`: the file is missing or unreadable; the checksum does not match (a
///   corrupted byte; the message gives the checksum's offset); the save could not be written.
/// - `prefopt::parse_error`: wrong magic (offset 0), unknown format version (offset 8), unknown
///   scalar type (offset 12), a truncated file (the offset where it ends and the field expected
///   there), trailing bytes, a stored configuration that does not validate (the field), a NaN or
///   infinite parameter (its index and byte offset).
/// - `prefopt::invalid_argument`: the file does not fit the model asked for: another scalar type
///   (no silent float <-> double conversion: load into the type the file was saved from, then
///   cast the parameters yourself), another configuration (`load_checkpoint_into` names the
///   first differing field and both values), or a parameter count the model's constructor does
///   not produce. Saving non-finite parameters is refused the same way (naming the index).
/// The model is written only when the whole file has been checked.

#include <Eigen/Core>

#include <bit>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "prefopt/core/assert.hpp"
#include "prefopt/core/concepts.hpp"
#include "prefopt/core/error.hpp"
#include "prefopt/core/types.hpp"
#include "prefopt/data/checksum.hpp"
#include "prefopt/io/atomic_file.hpp"
#include "prefopt/models/transformer/config.hpp"

namespace prefopt {

/// `scalar_type` (float or double), `config()` returning a `transformer_config`, and mutable and
/// const flat `parameters()`.
template <class M>
concept has_checkpoint_members = has_floating_scalar<M> && requires(M& m, const M& cm) {
  { cm.config() } -> std::convertible_to<const transformer_config&>;
  { m.parameters() } -> std::convertible_to<Eigen::Ref<vector_t<typename M::scalar_type>>>;
  { cm.parameters() } -> std::convertible_to<Eigen::Ref<const vector_t<typename M::scalar_type>>>;
};

/// A model a checkpoint can hold: the members above and a constructor from a
/// `transformer_config` (which must give the same parameter count for the same configuration),
/// e.g. `transformer<float>`.
template <class M>
concept CheckpointableModel =
    has_checkpoint_members<M> && std::constructible_from<M, const transformer_config&>;

/// What a checkpoint's header says (`read_checkpoint_info`).
struct checkpoint_info {
  std::uint32_t format_version = 0;
  /// Bytes per parameter: 4 (float32) or 8 (float64).
  std::uint32_t scalar_bytes = 0;
  transformer_config config{};
  index_t num_parameters = 0;
};

/// The magic, format version and fixed sizes of the format (file comment).
inline constexpr std::string_view checkpoint_magic = "PFOPTCKP";
inline constexpr std::uint32_t checkpoint_format_version = 1;

static_assert(sizeof(index_t) != 8 || sizeof(transformer_config) == 72,
              "prefopt: transformer_config changed: update the checkpoint format (fields and "
              "format version) in models/transformer/checkpoint.hpp");

namespace detail {

inline constexpr std::size_t checkpoint_header_bytes = 96;

inline void put_u64(std::string& out, std::uint64_t x) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((x >> (8 * i)) & 0xffU));
}
inline void put_u32(std::string& out, std::uint32_t x) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((x >> (8 * i)) & 0xffU));
}
inline std::uint64_t get_u64(std::string_view in, std::size_t at) {
  std::uint64_t x = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    x |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  }
  return x;
}
inline std::uint32_t get_u32(std::string_view in, std::size_t at) {
  std::uint32_t x = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    x |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  }
  return x;
}

/// A fully checked checkpoint: its header and its bytes.
struct checkpoint_view {
  checkpoint_info info;
  std::string bytes;
};

/// Throws `parse_error` when the file ends before `bytes` more bytes of `field` at `at`.
inline void need_bytes(const char* fn, const std::string& path, std::string_view in, std::size_t at,
                       std::size_t bytes, const char* field) {
  PREFOPT_CHECK(in.size() >= at + bytes, parse_error, fn, ": ", path,
                ": truncated checkpoint: ", "the file ends at byte offset ", in.size(),
                ", expected ", bytes, " bytes of ", field, " at offset ", at);
}

/// Reads and checks the whole file (everything but the fit to a particular model).
inline checkpoint_view read_checkpoint_file(const char* fn, const std::filesystem::path& file) {
  namespace fs = std::filesystem;
  const std::string path = file.string();
  std::error_code ec;
  PREFOPT_CHECK(fs::exists(file, ec), io_error, fn, ": ", path, ": no such file");
  PREFOPT_CHECK(fs::is_regular_file(file, ec), io_error, fn, ": ", path, ": not a regular file");
  checkpoint_view view;
  {
    std::ifstream in(file, std::ios::binary);
    PREFOPT_CHECK(in.good(), io_error, fn, ": ", path, ": cannot open for reading");
    view.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    PREFOPT_CHECK(!in.bad(), io_error, fn, ": ", path, ": reading failed");
  }
  const std::string_view in = view.bytes;
  checkpoint_info& info = view.info;

  need_bytes(fn, path, in, 0, 8, "magic");
  PREFOPT_CHECK(in.substr(0, 8) == checkpoint_magic, parse_error, fn, ": ", path,
                ": wrong magic at byte offset 0, expected \"", checkpoint_magic,
                "\" (not a prefopt checkpoint)");
  need_bytes(fn, path, in, 8, 4, "the format version");
  info.format_version = get_u32(in, 8);
  PREFOPT_CHECK(info.format_version == checkpoint_format_version, parse_error, fn, ": ", path,
                ": unknown format version ", info.format_version, " at byte offset 8, expected ",
                checkpoint_format_version);
  need_bytes(fn, path, in, 12, 4, "the scalar type");
  info.scalar_bytes = get_u32(in, 12);
  PREFOPT_CHECK(info.scalar_bytes == 4 || info.scalar_bytes == 8, parse_error, fn, ": ", path,
                ": unknown scalar type ", info.scalar_bytes,
                " at byte offset 12, expected 4 (float32) or 8 (float64)");
  static constexpr const char* fields[] = {
      "config.vocab_size", "config.eos",         "config.max_length", "config.d_model",
      "config.num_layers", "config.num_heads",   "config.mlp_hidden", "config.init_scale",
      "config.seed",       "the parameter count"};
  for (std::size_t k = 0; k < 10; ++k) need_bytes(fn, path, in, 16 + 8 * k, 8, fields[k]);
  transformer_config& c = info.config;
  const auto as_index = [&](std::size_t at) { return static_cast<index_t>(get_u64(in, at)); };
  c.vocab_size = as_index(16);
  const index_t eos = as_index(24);
  PREFOPT_CHECK(
      eos >= std::numeric_limits<token_id>::min() && eos <= std::numeric_limits<token_id>::max(),
      parse_error, fn, ": ", path, ": config.eos = ", eos,
      " at byte offset 24 does not fit a token id");
  c.eos = static_cast<token_id>(eos);
  c.max_length = as_index(32);
  c.d_model = as_index(40);
  c.num_layers = as_index(48);
  c.num_heads = as_index(56);
  c.mlp_hidden = as_index(64);
  c.init_scale = std::bit_cast<double>(get_u64(in, 72));
  c.seed = get_u64(in, 80);
  const std::uint64_t count = get_u64(in, 88);
  const std::size_t s = info.scalar_bytes;
  const std::size_t payload_room = in.size() - checkpoint_header_bytes;  // >= 0: checked above
  PREFOPT_CHECK(count <= payload_room / s, parse_error, fn, ": ", path,
                ": truncated checkpoint: the parameter count ", count, " at byte offset 88 needs ",
                count, " x ", s, " bytes from offset ", checkpoint_header_bytes,
                " but the file ends at byte offset ", in.size());
  const std::size_t end = checkpoint_header_bytes + static_cast<std::size_t>(count) * s;
  need_bytes(fn, path, in, end, 8, "the checksum");
  PREFOPT_CHECK(in.size() == end + 8, parse_error, fn, ": ", path, ": ", in.size() - end - 8,
                " unexpected bytes after the checksum at byte offset ", end + 8,
                ", expected the file to end there");
  const std::uint64_t stored = get_u64(in, end);
  const std::uint64_t computed =
      data::fnv1a64{}
          .update(std::span<const unsigned char>(
              reinterpret_cast<const unsigned char*>(view.bytes.data()), end))
          .value();
  PREFOPT_CHECK(stored == computed, io_error, fn, ": ", path,
                ": checksum mismatch: the file stores ", stored, " at byte offset ", end,
                ", its content hashes to ", computed, " (a corrupted byte)");
  info.num_parameters = static_cast<index_t>(count);
  try {
    c.validate(fn);
  } catch (const invalid_argument& e) {
    PREFOPT_THROW(parse_error, fn, ": ", path, ": the stored configuration is invalid: ", e.what());
  }
  for (index_t k = 0; k < info.num_parameters; ++k) {
    const std::size_t at = checkpoint_header_bytes + static_cast<std::size_t>(k) * s;
    const double x = s == 4 ? static_cast<double>(std::bit_cast<float>(get_u32(in, at)))
                            : std::bit_cast<double>(get_u64(in, at));
    PREFOPT_CHECK(std::isfinite(x), parse_error, fn, ": ", path, ": parameter ", k, " is ", x,
                  " (byte offset ", at, "), expected finite parameters");
  }
  return view;
}

/// Copies the checked parameters of `view` into `out` (sizes already checked).
template <class T>
void copy_checkpoint_parameters(const checkpoint_view& view, Eigen::Ref<vector_t<T>> out) {
  const std::string_view in = view.bytes;
  for (index_t k = 0; k < out.size(); ++k) {
    const std::size_t at = checkpoint_header_bytes + static_cast<std::size_t>(k) * sizeof(T);
    if constexpr (std::is_same_v<T, float>) {
      out[k] = std::bit_cast<float>(get_u32(in, at));
    } else {
      out[k] = std::bit_cast<double>(get_u64(in, at));
    }
  }
}

template <class T>
void check_checkpoint_scalar(const char* fn, const std::string& path, const checkpoint_info& info) {
  PREFOPT_CHECK(info.scalar_bytes == sizeof(T), invalid_argument, fn, ": ", path,
                ": the file holds float", 8 * info.scalar_bytes,
                " parameters, the model's "
                "scalar_type is float",
                8 * sizeof(T), " (no silent conversion: load into the saved type and cast)");
}

template <class M>
void check_checkpoint_count(const char* fn, const std::string& path, const checkpoint_info& info,
                            const M& model) {
  const auto n = static_cast<index_t>(model.parameters().size());
  PREFOPT_CHECK(info.num_parameters == n, invalid_argument, fn, ": ", path, ": the file has ",
                info.num_parameters, " parameters, a model of its configuration has ", n);
}

}  // namespace detail

/// Writes `model`'s configuration and parameters to `path` atomically (format in the file
/// comment); an existing file is replaced only once the new one is complete.
/// Throws `prefopt::invalid_argument` for a non-finite parameter (naming its index; nothing is
/// written) and `prefopt::io_error` when the file cannot be written (the old file stays).
template <CheckpointableModel M>
void save_checkpoint(const std::filesystem::path& path, const M& model) {
  using T = typename M::scalar_type;
  constexpr const char* fn = "save_checkpoint";
  const transformer_config& c = model.config();
  const Eigen::Ref<const vector_t<T>> theta = model.parameters();
  for (index_t k = 0; k < theta.size(); ++k) {
    PREFOPT_CHECK(std::isfinite(theta[k]), invalid_argument, fn, ": ", path.string(),
                  ": model parameter ", k, " is ", static_cast<double>(theta[k]),
                  ", expected finite parameters (nothing was written)");
  }
  std::string out;
  out.reserve(detail::checkpoint_header_bytes + static_cast<std::size_t>(theta.size()) * sizeof(T) +
              8);
  out.append(checkpoint_magic);
  detail::put_u32(out, checkpoint_format_version);
  detail::put_u32(out, static_cast<std::uint32_t>(sizeof(T)));
  for (const index_t x : {c.vocab_size, static_cast<index_t>(c.eos), c.max_length, c.d_model,
                          c.num_layers, c.num_heads, c.mlp_hidden}) {
    detail::put_u64(out, static_cast<std::uint64_t>(x));
  }
  detail::put_u64(out, std::bit_cast<std::uint64_t>(c.init_scale));
  detail::put_u64(out, c.seed);
  detail::put_u64(out, static_cast<std::uint64_t>(theta.size()));
  for (index_t k = 0; k < theta.size(); ++k) {
    if constexpr (std::is_same_v<T, float>) {
      detail::put_u32(out, std::bit_cast<std::uint32_t>(theta[k]));
    } else {
      detail::put_u64(out, std::bit_cast<std::uint64_t>(theta[k]));
    }
  }
  const std::uint64_t sum = data::fnv1a64{}
                                .update(std::span<const unsigned char>(
                                    reinterpret_cast<const unsigned char*>(out.data()), out.size()))
                                .value();
  detail::put_u64(out, sum);
  try {
    io::write_file_atomically(path, out);
  } catch (const io_error& e) {
    PREFOPT_THROW(io_error, fn, ": ", path.string(), ": ", e.what());
  }
}

/// The header of the checkpoint at `path`, after checking the whole file (magic, version, sizes,
/// checksum, configuration, finite parameters). Errors as in the file comment.
[[nodiscard]] inline checkpoint_info read_checkpoint_info(const std::filesystem::path& path) {
  return detail::read_checkpoint_file("read_checkpoint_info", path).info;
}

/// A new model `M(config)` of the checkpoint's configuration, with its parameters, e.g.
/// `load_checkpoint<transformer<float>>(path)`. The file's scalar type must be `M::scalar_type`.
template <CheckpointableModel M>
[[nodiscard]] M load_checkpoint(const std::filesystem::path& path) {
  using T = typename M::scalar_type;
  constexpr const char* fn = "load_checkpoint";
  const detail::checkpoint_view view = detail::read_checkpoint_file(fn, path);
  detail::check_checkpoint_scalar<T>(fn, path.string(), view.info);
  M model(view.info.config);
  detail::check_checkpoint_count(fn, path.string(), view.info, model);
  detail::copy_checkpoint_parameters<T>(view, model.parameters());
  return model;
}

/// Loads the checkpoint's parameters into `model`, whose configuration must equal the file's
/// (`prefopt::invalid_argument` naming the first differing field, the file's and the model's
/// values). `model` is unchanged on any error.
template <CheckpointableModel M>
void load_checkpoint_into(const std::filesystem::path& path, M& model) {
  using T = typename M::scalar_type;
  constexpr const char* fn = "load_checkpoint_into";
  const std::string p = path.string();
  const detail::checkpoint_view view = detail::read_checkpoint_file(fn, path);
  const transformer_config& f = view.info.config;
  const transformer_config& m = model.config();
  const auto same = [&](const char* field, const auto& file_value, const auto& model_value) {
    PREFOPT_CHECK(file_value == model_value, invalid_argument, fn, ": ", p,
                  ": configuration mismatch: config.", field, " is ", file_value,
                  " in the file and ", model_value, " in the model");
  };
  same("vocab_size", f.vocab_size, m.vocab_size);
  same("eos", f.eos, m.eos);
  same("max_length", f.max_length, m.max_length);
  same("d_model", f.d_model, m.d_model);
  same("num_layers", f.num_layers, m.num_layers);
  same("num_heads", f.num_heads, m.num_heads);
  same("mlp_hidden", f.mlp_hidden, m.mlp_hidden);
  same("init_scale", f.init_scale, m.init_scale);
  same("seed", f.seed, m.seed);
  PREFOPT_ASSERT(f == m);
  detail::check_checkpoint_scalar<T>(fn, p, view.info);
  detail::check_checkpoint_count(fn, p, view.info, model);
  detail::copy_checkpoint_parameters<T>(view, model.parameters());
}

}  // namespace prefopt
