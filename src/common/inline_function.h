// A move-only callable whose target lives inside the object, never on the heap: for completions
// issued on a hot path (edge/route_table.h), where std::function would allocate for any capture
// beyond its small buffer, and where a capture too large to fit should be a compile error rather
// than a silent allocation.
//
//   InlineFunction<void(int)> f = [this, n](int x) { use(n + x); };
//   f(1);
//
// The target must be nothrow-movable and fit Capacity bytes (static_assert). An empty function
// (default-constructed, nullptr, or moved from) must not be called; test it with operator bool.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace wtmesh {

template <typename Signature, size_t Capacity = 48>
class InlineFunction;

namespace inline_function_detail {
// A callable an InlineFunction `Self` of signature R(Args...) can hold (not another `Self`).
template <typename F, typename Self, typename R, typename... Args>
concept Target =
    !std::is_same_v<std::decay_t<F>, Self> && std::is_invocable_r_v<R, std::decay_t<F>&, Args...>;
}  // namespace inline_function_detail

template <typename R, typename... Args, size_t Capacity>
class InlineFunction<R(Args...), Capacity> {
 public:
  static constexpr size_t kCapacity = Capacity;

  InlineFunction() = default;
  InlineFunction(std::nullptr_t) {}
  template <inline_function_detail::Target<InlineFunction, R, Args...> F>
  InlineFunction(F&& f) {  // implicit, like std::function's
    using T = std::decay_t<F>;
    static_assert(sizeof(T) <= Capacity, "the capture does not fit InlineFunction's Capacity");
    static_assert(alignof(T) <= alignof(std::max_align_t), "over-aligned capture");
    static_assert(std::is_nothrow_move_constructible_v<T>, "the capture must be nothrow-movable");
    ::new (static_cast<void*>(storage_)) T(std::forward<F>(f));
    ops_ = &kOps<T>;
  }
  InlineFunction(InlineFunction&& other) noexcept { take(other); }
  InlineFunction& operator=(InlineFunction&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  InlineFunction(const InlineFunction&) = delete;
  InlineFunction& operator=(const InlineFunction&) = delete;
  ~InlineFunction() { reset(); }

  explicit operator bool() const { return ops_ != nullptr; }
  R operator()(Args... args) { return ops_->call(storage_, std::forward<Args>(args)...); }

 private:
  struct Ops {
    R (*call)(void* target, Args&&... args);
    void (*move)(void* to, void* from) noexcept;  // move-constructs at `to`, destroys `from`
    void (*destroy)(void* target) noexcept;
  };
  template <typename T>
  static constexpr Ops kOps{
      [](void* p, Args&&... args) -> R { return (*static_cast<T*>(p))(std::forward<Args>(args)...); },
      [](void* to, void* from) noexcept {
        ::new (to) T(std::move(*static_cast<T*>(from)));
        static_cast<T*>(from)->~T();
      },
      [](void* p) noexcept { static_cast<T*>(p)->~T(); },
  };

  void take(InlineFunction& other) noexcept {
    if (other.ops_ == nullptr) return;
    other.ops_->move(storage_, other.storage_);
    ops_ = std::exchange(other.ops_, nullptr);
  }
  void reset() noexcept {
    if (ops_ != nullptr) std::exchange(ops_, nullptr)->destroy(storage_);
  }

  alignas(std::max_align_t) unsigned char storage_[Capacity];
  const Ops* ops_ = nullptr;
};

}  // namespace wtmesh
