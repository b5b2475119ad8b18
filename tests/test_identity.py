"""A tensor has one Python object while it lives: methods that return an existing tensor hand
back that object, as in PyTorch (in-place ops, no-op conversions, hook arguments)."""

import gc

import lepton


def test_inplace_and_noop_methods_return_self():
    x = lepton.ones(3)
    assert x.add_(1) is x
    assert x.mul_(2) is x
    assert x.zero_() is x
    assert x.contiguous() is x
    assert x.to("cpu") is x
    assert x.requires_grad_() is x


def test_new_tensors_are_new_objects():
    x = lepton.ones(3)
    assert x.detach() is not x
    assert x[0] is not x
    assert x.clone() is not x


def test_hook_receives_the_parameter_object():
    p = lepton.ones(2, requires_grad=True)
    seen = []
    p.register_post_accumulate_grad_hook(lambda t: seen.append(t is p))
    (p * 2).sum().backward()
    assert seen == [True]


def test_dead_objects_are_forgotten():
    x = lepton.ones(2)
    y = x.view(2)  # another tensor over the same storage
    del x
    gc.collect()
    assert y.sum().item() == 2.0
    for _ in range(1000):  # churn: freed objects must not be handed back for new tensors
        a = lepton.ones(1) + 1
        assert a.item() == 2.0
