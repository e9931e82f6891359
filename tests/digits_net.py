"""A small torch classifier trained on scikit-learn's digits for tests (deterministic, one torch thread, seconds)."""
import numpy as np
import torch
from torch import nn


def train(make, epochs: int, n_eval: int, n_calib: int):
    """(model in eval mode, calibration images, eval images, eval labels): ``make()`` builds the net after
    ``torch.manual_seed(0)``; 1,400 training images of a fixed permutation, the next ``n_eval`` for evaluation."""
    from sklearn.datasets import load_digits
    d = load_digits()
    X, y = (d.images / 16.0).astype(np.float32)[:, None], d.target
    idx = np.random.RandomState(0).permutation(len(X))
    tr, te = idx[:1400], idx[1400:1400 + n_eval]
    torch.manual_seed(0)
    m = make()
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    xt, yt = torch.tensor(X[tr]), torch.tensor(y[tr])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            for b in range(0, 1400, 200):
                opt.zero_grad()
                nn.functional.cross_entropy(m(xt[b:b + 200]), yt[b:b + 200]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return m.eval(), X[tr[:n_calib]], X[te], y[te]
