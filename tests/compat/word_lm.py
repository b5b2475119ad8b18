"""A word-level language model in the style of pytorch/examples' word_language_model: a corpus
dictionary built from text files, batchify/get_batch over [T, B] token columns, an LSTM (or GRU)
with tied or untied embeddings, or an nn.Transformer-based encoder with a float causal mask;
truncated BPTT with hidden states detached between batches, clip_grad_norm_, the SGD step done by
hand through p.data.add_, the learning rate annealed on a plateau, the whole model saved with
torch.save and loaded back under torch.serialization.safe_globals. Prints 'test loss X'."""
import argparse
import gzip
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

parser = argparse.ArgumentParser()
parser.add_argument("--text", required=True, help="a .txt or .txt.gz corpus; split 80/10/10")
parser.add_argument("--model", default="LSTM", choices=["LSTM", "GRU", "Transformer"])
parser.add_argument("--words", type=int, default=40000, help="how many words of the corpus to use")
parser.add_argument("--size", type=int, default=64)
parser.add_argument("--layers", type=int, default=2)
parser.add_argument("--lr", type=float, default=10.0)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--bptt", type=int, default=25)
parser.add_argument("--tied", action="store_true")
parser.add_argument("--save", default="model.pt")
args = parser.parse_args()
torch.manual_seed(7)


class Vocabulary:
    def __init__(self):
        self.index, self.words = {}, []

    def add(self, word):
        if word not in self.index:
            self.index[word] = len(self.words)
            self.words.append(word)
        return self.index[word]


def tokenize(lines, vocab):
    ids = [vocab.add(w) for line in lines for w in line.split() + ["<eos>"]]
    return torch.tensor(ids, dtype=torch.int64)


opener = gzip.open if args.text.endswith(".gz") else open
with opener(args.text, "rt", encoding="utf-8") as f:
    lines, count = [], 0
    for line in f:
        if line.strip():
            lines.append(line)
            count += len(line.split()) + 1
        if count >= args.words:
            break
vocab = Vocabulary()
n = len(lines)
train_ids = tokenize(lines[: n * 8 // 10], vocab)
valid_ids = tokenize(lines[n * 8 // 10: n * 9 // 10], vocab)
test_ids = tokenize(lines[n * 9 // 10:], vocab)
ntokens = len(vocab.words)


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    return data.narrow(0, 0, nbatch * bsz).view(bsz, -1).t().contiguous()


train_data, val_data, test_data = batchify(train_ids, 16), batchify(valid_ids, 8), batchify(test_ids, 8)


def get_batch(source, i):
    seq_len = min(args.bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


class RecurrentLM(nn.Module):
    def __init__(self, kind, ntoken, size, layers, tie):
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.encoder = nn.Embedding(ntoken, size)
        self.rnn = getattr(nn, kind)(size, size, layers, dropout=0.2)
        self.decoder = nn.Linear(size, ntoken)
        if tie:
            self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        self.kind, self.size, self.layers = kind, size, layers

    def forward(self, x, hidden):
        out, hidden = self.rnn(self.drop(self.encoder(x)), hidden)
        return F.log_softmax(self.decoder(self.drop(out)).view(-1, self.decoder.out_features), dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        zeros = weight.new_zeros(self.layers, bsz, self.size)
        return (zeros, zeros.clone()) if self.kind == "LSTM" else zeros


class Positions(nn.Module):
    def __init__(self, size, max_len=512):
        super().__init__()
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div = torch.exp(torch.arange(0, size, 2).float() * (-math.log(10000.0) / size))
        table = torch.zeros(max_len, size)
        table[:, 0::2] = torch.sin(position * div)
        table[:, 1::2] = torch.cos(position * div)
        self.register_buffer("table", table.unsqueeze(0).transpose(0, 1))

    def forward(self, x):
        return x + self.table[:x.size(0), :]


class TransformerLM(nn.Transformer):
    def __init__(self, ntoken, size, layers):
        super().__init__(d_model=size, nhead=2, dim_feedforward=2 * size, num_encoder_layers=layers)
        self.embed, self.positions = nn.Embedding(ntoken, size), Positions(size)
        self.head, self.size, self.mask = nn.Linear(size, ntoken), size, None

    def forward(self, x, hidden=None):
        if self.mask is None or self.mask.size(0) != len(x):
            self.mask = torch.log(torch.tril(torch.ones(len(x), len(x))))
        h = self.encoder(self.positions(self.embed(x) * math.sqrt(self.size)), mask=self.mask)
        return F.log_softmax(self.head(h).view(-1, self.head.out_features), dim=-1), None

    def init_hidden(self, bsz):
        return None


def repackage(h):
    if h is None or isinstance(h, torch.Tensor):
        return None if h is None else h.detach()
    return tuple(repackage(v) for v in h)


def evaluate(model, source):
    model.eval()
    total, hidden = 0.0, model.init_hidden(source.size(1))
    with torch.no_grad():
        for i in range(0, source.size(0) - 1, args.bptt):
            data, targets = get_batch(source, i)
            output, hidden = model(data, hidden)
            total += len(data) * F.nll_loss(output, targets).item()
            hidden = repackage(hidden)
    return total / (len(source) - 1)


if args.model == "Transformer":
    model = TransformerLM(ntokens, args.size, args.layers)
else:
    model = RecurrentLM(args.model, ntokens, args.size, args.layers, args.tied)
criterion = nn.NLLLoss()
lr, best = args.lr, None
print(f"vocabulary {ntokens} words, {train_data.numel()} training tokens, "
      f"{sum(p.numel() for p in model.parameters())} parameters")
for epoch in range(1, args.epochs + 1):
    model.train()
    hidden = model.init_hidden(train_data.size(1))
    for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
        data, targets = get_batch(train_data, i)
        model.zero_grad()
        hidden = repackage(hidden)
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        for p in model.parameters():
            if p.grad is not None:  # (nn.Transformer's decoder stays unused)
                p.data.add_(p.grad, alpha=-lr)
        if batch == 0 and epoch == 1:
            print(f"first batch loss {loss.item():.3f}")
    val_loss = evaluate(model, val_data)
    print(f"epoch {epoch} | lr {lr:.2f} | valid loss {val_loss:.3f} | valid ppl {math.exp(val_loss):.1f}")
    if best is None or val_loss < best:
        with open(args.save, "wb") as f:
            torch.save(model, f)
        best = val_loss
    else:
        lr /= 4.0

allowed = [RecurrentLM, TransformerLM, Positions, nn.Dropout, nn.Embedding, nn.Linear, nn.LSTM, nn.GRU,
           nn.LayerNorm, nn.ModuleList, nn.MultiheadAttention, nn.TransformerEncoder, nn.TransformerEncoderLayer,
           nn.TransformerDecoder, nn.TransformerDecoderLayer, F.relu,
           torch.nn.modules.linear.NonDynamicallyQuantizableLinear]
with open(args.save, "rb") as f, torch.serialization.safe_globals(allowed):
    model = torch.load(f)
print(f"reloaded {type(model).__name__} from {os.path.basename(args.save)}")
test_loss = evaluate(model, test_data)
print(f"test loss {test_loss:.3f} | test ppl {math.exp(test_loss):.1f}")
