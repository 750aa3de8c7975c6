"""CacheKey: canonical digests, every field counts, bad values are refused."""
import pytest
from storage_testkit import CHANGED, KEY_FIELDS, make_key, sha

from omnivideo.errors import CacheError
from omnivideo.storage import FORMAT_VERSION, CacheKey


def test_digest_is_canonical_and_stable():
    a = make_key(sampling={"fps": 2.0, "max_frames": 64})
    b = make_key(sampling=[("max_frames", 64), ("fps", 2.0)])
    assert a == b and a.digest() == b.digest()
    assert a.sampling == (("fps", 2.0), ("max_frames", 64))
    assert len(a.digest()) == 64 and int(a.digest(), 16) >= 0
    assert a.format_version == FORMAT_VERSION


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_any_field_change_changes_the_digest(field):
    assert make_key(**{field: CHANGED[field]}).digest() != make_key().digest()


def test_added_sampling_parameter_changes_the_digest():
    assert make_key(sampling={**KEY_FIELDS["sampling"], "min_pixels": 3136}).digest() != make_key().digest()


def test_dict_round_trip():
    key = make_key()
    again = CacheKey.from_dict(key.to_dict())
    assert again == key and again.digest() == key.digest()


@pytest.mark.parametrize("bad", [
    {"video_sha256": "abc"},
    {"prefix_tokens_sha256": sha("x").upper()},
    {"model_id": ""},
    {"dtype": None},
    {"format_version": 0},
    {"format_version": True},
    {"sampling": {"fps": float("nan")}},
    {"sampling": {"fps": [1, 2]}},
    {"sampling": [("fps", 1.0), ("fps", 2.0)]},
])
def test_bad_values_are_refused(bad):
    with pytest.raises(CacheError):
        make_key(**bad)


def test_from_dict_refuses_unknown_fields():
    with pytest.raises(CacheError, match="fields"):
        CacheKey.from_dict({**make_key().to_dict(), "extra": 1})
