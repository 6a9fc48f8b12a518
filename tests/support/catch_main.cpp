// The one Catch2 main shared by every prefopt test suite.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
