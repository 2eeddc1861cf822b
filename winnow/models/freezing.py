"""Freezing parts of a model for linear probes and staged fine-tuning."""

from __future__ import annotations

from torch import nn

from winnow.models.projection import ProjectedModel


def _classifier_param_ids(model: nn.Module) -> set[int]:
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(classifier, nn.Module):
        raise ValueError(f"{type(model).__name__} has no get_classifier(); cannot freeze its backbone")
    head = list(classifier.parameters())
    for module in model.modules():  # an embedding_dim projection is new (never pretrained): it trains with the head
        if isinstance(module, ProjectedModel):
            head += list(module.projection.parameters())
    return {id(p) for p in head}


def frozen_parameter_names(model: nn.Module, spec: str) -> list[str]:
    """Names of the parameters a freeze spec selects.

    Args:
        spec: "backbone" (all but the classifier and an `embedding_dim` projection) or "until=<module name>" (every
            parameter registered before that module; the module itself stays trainable).
    """
    if spec == "backbone":
        head = _classifier_param_ids(model)
        return [n for n, p in model.named_parameters() if id(p) not in head]
    if spec.startswith("until="):
        return _names_before(model, spec.removeprefix("until="))
    raise ValueError(f"freeze must be 'backbone' or 'until=<module name>', got {spec!r}")


def _names_before(model: nn.Module, module_name: str) -> list[str]:
    modules = dict(model.named_modules())
    if module_name not in modules or not module_name:
        top = [n for n, _ in model.named_children()]
        raise ValueError(f"freeze until={module_name!r}: no such module; top-level modules: {top}")
    names = []
    for name, _ in model.named_parameters():
        if name == module_name or name.startswith(module_name + "."):
            break
        names.append(name)
    return names


def apply_freeze(model: nn.Module, spec: str | None) -> int:
    """Freeze parameters (requires_grad False) and return how many tensors were frozen."""
    if not spec:
        return 0
    names = set(frozen_parameter_names(model, spec))
    for name, param in model.named_parameters():
        param.requires_grad_(name not in names)
    return len(names)


def unfreeze_all(model: nn.Module) -> None:
    for param in model.parameters():
        param.requires_grad_(True)


def set_train_mode(model: nn.Module) -> None:
    """`model.train()`, but BatchNorm layers whose parameters are frozen stay in eval mode."""
    model.train()
    for module in frozen_batchnorms(model):
        module.eval()


def frozen_batchnorms(model: nn.Module) -> list[nn.Module]:
    """The BatchNorm layers whose parameters are all frozen (their statistics must not change)."""
    frozen = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                frozen.append(module)
    return frozen


def trainable_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
