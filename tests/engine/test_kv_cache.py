"""OmniCache: preallocated layers behave like a growing cache, and round-trip through tensors."""
import torch

from omnivideo.engine.kv_cache import OmniCache, OmniLayer


def test_layer_appends_and_grows_beyond_reservation():
    layer = OmniLayer()
    layer.reserve(4)
    chunks = [torch.randn(1, 2, n, 8) for n in (3, 1, 5, 7)]
    for c in chunks:
        k, v = layer.update(c, -c)
    expected = torch.cat(chunks, dim=2)
    assert torch.equal(k, expected) and torch.equal(v, -expected)
    assert layer.get_seq_length() == 16 and layer.get_mask_sizes(2) == (18, 0)


def test_truncate_then_append_overwrites_the_tail():
    layer = OmniLayer()
    a, b, c = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 2, 4)
    layer.update(a, a)
    layer.update(b, b)
    layer.truncate(5)
    k, _ = layer.update(c, c)
    assert torch.equal(k, torch.cat([a, c], dim=2))


def test_cache_round_trip_through_layers():
    cache = OmniCache(num_layers=3)
    for i in range(3):
        cache.update(torch.randn(1, 2, 6, 4), torch.randn(1, 2, 6, 4), i)
    copy = OmniCache.from_layers([(k.clone(), v.clone()) for k, v in cache.iter_layers()], 3,
                                 torch.device("cpu"), torch.float32, reserve=10)
    assert copy.get_seq_length() == 6
    for (k1, v1), (k2, v2) in zip(cache.iter_layers(), copy.iter_layers()):
        assert torch.equal(k1, k2) and torch.equal(v1, v2)
