#include "common/inline_function.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace wtmesh {
namespace {

TEST(InlineFunction, CallsItsTargetWithArguments) {
  int total = 0;
  InlineFunction<int(int, const std::string&)> f = [&total](int x, const std::string& s) {
    total += x + static_cast<int>(s.size());
    return total;
  };
  ASSERT_TRUE(f);
  EXPECT_EQ(f(1, "ab"), 3);
  EXPECT_EQ(f(2, ""), 5);
}

TEST(InlineFunction, EmptyAndNull) {
  InlineFunction<void()> a;
  InlineFunction<void()> b = nullptr;
  EXPECT_FALSE(a);
  EXPECT_FALSE(b);
}

TEST(InlineFunction, MovesTheTargetAndDestroysItOnce) {
  auto token = std::make_shared<int>(7);
  std::weak_ptr<int> watch = token;
  {
    InlineFunction<int()> f = [t = std::move(token)] { return *t; };
    InlineFunction<int()> g = std::move(f);
    EXPECT_FALSE(f);  // a moved-from function is empty, by contract
    ASSERT_TRUE(g);
    EXPECT_EQ(g(), 7);
    InlineFunction<int()> h;
    h = std::move(g);
    EXPECT_EQ(h(), 7);
    EXPECT_EQ(watch.use_count(), 1);
    h = nullptr;
    EXPECT_TRUE(watch.expired()) << "assigning nullptr destroys the capture";
  }
  EXPECT_TRUE(watch.expired());
}

TEST(InlineFunction, MoveOnlyCapturesAreAccepted) {
  auto p = std::make_unique<std::string>("x");
  InlineFunction<size_t()> f = [p = std::move(p)] { return p->size(); };
  EXPECT_EQ(f(), 1u);
  static_assert(sizeof(InlineFunction<void()>) <= InlineFunction<void()>::kCapacity + 16);
}

}  // namespace
}  // namespace wtmesh
