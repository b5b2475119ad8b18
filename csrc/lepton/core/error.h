// Errors raised by the engine. Each kind maps to one Python exception class in the bindings,
// so a bad input always surfaces as a clear Python error and never as a crash.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace lepton {

enum class ErrorKind { Value, Type, Index, NotImplemented, Runtime, OutOfMemory };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

template <class... Args>
[[noreturn]] void raise(ErrorKind kind, const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  throw Error(kind, os.str());
}

}  // namespace lepton

// LEPTON_CHECK(cond, Value, "message ", x, " more") raises Error(kind) when cond is false.
#define LEPTON_CHECK(cond, KIND, ...)                                   \
  do {                                                                  \
    if (!(cond)) ::lepton::raise(::lepton::ErrorKind::KIND, __VA_ARGS__); \
  } while (0)
