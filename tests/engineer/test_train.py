"""The trainer's AdamW is torch.optim.AdamW's update, and its state dict loads into torch's."""

import torch

from services.engineer.train import AdamW


def test_adamw_takes_torchs_steps_with_and_without_weight_decay() -> None:
    torch.manual_seed(0)
    ours_params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3))]
    torch_params = [torch.nn.Parameter(p.detach().clone()) for p in ours_params]

    def groups(params: list[torch.nn.Parameter]) -> list[dict]:
        return [{"params": [params[0]], "weight_decay": 0.1}, {"params": [params[1]], "weight_decay": 0.0}]

    ours = AdamW(groups(ours_params), lr=3e-3, betas=(0.9, 0.95))
    reference = torch.optim.AdamW(groups(torch_params), lr=3e-3, betas=(0.9, 0.95))
    for step in range(6):
        for group in (*ours.param_groups, *reference.param_groups):
            group["lr"] = 3e-3 * (step + 1) / 6  # a schedule, set between steps as the trainer does
        grads = [torch.randn_like(p) for p in ours_params]
        for params in (ours_params, torch_params):
            for param, grad in zip(params, grads, strict=True):
                param.grad = grad.clone()
        ours.step()
        reference.step()
        ours.zero_grad()
        assert all(p.grad is None for p in ours_params)
    for mine, theirs in zip(ours_params, torch_params, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7)

    restored = torch.optim.AdamW(groups([torch.nn.Parameter(p.detach().clone()) for p in ours_params]), lr=1.0)
    restored.load_state_dict(ours.state_dict())
    torch.testing.assert_close(restored.state_dict()["state"][0]["exp_avg"],
                               reference.state_dict()["state"][0]["exp_avg"])
    assert restored.param_groups[0]["weight_decay"] == 0.1 and restored.param_groups[0]["betas"] == (0.9, 0.95)
