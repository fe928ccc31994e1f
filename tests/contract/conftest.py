"""The contract suite lives in the package (`tidings.contract`) so other transports reuse it;
have pytest rewrite its asserts so failures show the values compared."""

import pytest

pytest.register_assert_rewrite("tidings.contract")
