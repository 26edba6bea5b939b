"""Two small autograd engines written for the tests: ``Value`` (scalars, micrograd's shape) and ``Tensor``
(NumPy arrays, with broadcasting). Each op's backward sits next to its forward; new nodes are built with
``type(self)``, so a test's subclass that overrides one op injects one mistake into the whole engine."""

import math

import numpy as np


class Value:
    def __init__(self, data, children=()):
        self.data, self.grad = float(data), 0.0
        self._prev, self._backward = children, lambda: None

    def _node(self, data, children):
        return type(self)(data, children)

    def _lift(self, other):
        return other if isinstance(other, Value) else type(self)(other)

    def __add__(self, other):
        other = self._lift(other)
        out = self._node(self.data + other.data, (self, other))

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = self._lift(other)
        out = self._node(self.data * other.data, (self, other))

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, n):
        out = self._node(self.data**n, (self,))

        def _backward():
            self.grad += n * self.data ** (n - 1) * out.grad

        out._backward = _backward
        return out

    def _unary(self, data, derivative):  # derivative: d(out)/d(self), from the input and the output
        out = self._node(data, (self,))

        def _backward():
            self.grad += derivative(self.data, out.data) * out.grad

        out._backward = _backward
        return out

    def relu(self):
        return self._unary(max(self.data, 0.0), lambda x, y: float(x > 0))

    def tanh(self):
        return self._unary(math.tanh(self.data), lambda x, t: 1 - t * t)

    def sigmoid(self):
        return self._unary(1 / (1 + math.exp(-self.data)), lambda x, s: s * (1 - s))

    def exp(self):
        return self._unary(math.exp(self.data), lambda x, e: e)

    def log(self):
        return self._unary(math.log(self.data), lambda x, y: 1 / x)

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + -self._lift(other)

    def __truediv__(self, other):
        return self * self._lift(other) ** -1

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __rsub__(self, other):
        return self._lift(other) - self

    def __rtruediv__(self, other):
        return self._lift(other) / self

    def topological(self):
        order, seen = [], set()

        def visit(node):
            if node not in seen:
                seen.add(node)
                for child in node._prev:
                    visit(child)
                order.append(node)

        visit(self)
        return order

    def backward(self):
        order = self.topological()
        self.grad = 1.0
        for node in reversed(order):
            node._backward()


def unbroadcast(grad, shape):
    """``grad`` summed back to ``shape``: over leading axes added by broadcasting, and axes of size 1."""
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    return grad.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)


class Tensor(Value):
    """NumPy arrays; elementwise ops come from ``Value`` (NumPy broadcasts), the gradients are reduced to
    each operand's shape, and sum, mean and matmul are added."""

    def __init__(self, data, children=()):
        self.data = np.asarray(data, dtype=np.float64)
        self.grad, self._prev, self._backward = np.zeros_like(self.data), children, lambda: None

    def _lift(self, other):
        return other if isinstance(other, Tensor) else type(self)(other)

    def __add__(self, other):
        return self._broadcast(self._lift(other), lambda a, b: a + b, lambda g, a, b: (g, g))

    def __mul__(self, other):
        return self._broadcast(self._lift(other), lambda a, b: a * b, lambda g, a, b: (g * b, g * a))

    def _broadcast(self, other, forward, backward):
        out = self._node(forward(self.data, other.data), (self, other))

        def _backward():
            ga, gb = backward(out.grad, self.data, other.data)
            self.grad += unbroadcast(ga, self.data.shape)
            other.grad += unbroadcast(gb, other.data.shape)

        out._backward = _backward
        return out

    def _unary(self, data, derivative):
        out = self._node(data, (self,))
        out._backward = lambda: setattr(self, "grad", self.grad + derivative(self.data, out.data) * out.grad)
        return out

    def __pow__(self, n):
        return self._unary(self.data**n, lambda x, y: n * x ** (n - 1))

    def relu(self):
        return self._unary(np.maximum(self.data, 0.0), lambda x, y: (x > 0).astype(float))

    def tanh(self):
        return self._unary(np.tanh(self.data), lambda x, t: 1 - t * t)

    def sigmoid(self):
        return self._unary(1 / (1 + np.exp(-self.data)), lambda x, s: s * (1 - s))

    def exp(self):
        return self._unary(np.exp(self.data), lambda x, e: e)

    def log(self):
        return self._unary(np.log(self.data), lambda x, y: 1 / x)

    def sum(self):
        return self._unary(self.data.sum(), lambda x, y: np.ones_like(x))

    def mean(self):
        return self._unary(self.data.mean(), lambda x, y: np.full_like(x, 1 / x.size))

    def __matmul__(self, other):
        out = self._node(self.data @ other.data, (self, other))

        def _backward():
            self.grad += out.grad @ other.data.T
            other.grad += self.data.T @ out.grad

        out._backward = _backward
        return out

    @property
    def T(self):  # noqa: N802 (NumPy's and torch's name)
        out = self._node(self.data.T, (self,))
        out._backward = lambda: setattr(self, "grad", self.grad + out.grad.T)
        return out

    def backward(self):
        order = self.topological()
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            node._backward()


class ArrayTensor(Tensor):
    """A tensor engine without ``sum`` whose nodes hold NumPy arrays only (a Python float is refused, as
    engines that wrap ``np.ndarray`` do): nothing but its data says it is a tensor engine."""

    def __init__(self, data, children=()):
        if not isinstance(data, np.ndarray | np.generic):
            raise TypeError(f"ArrayTensor holds NumPy arrays, not {type(data).__name__}")
        super().__init__(data, children)

    def _lift(self, other):
        return other if isinstance(other, Tensor) else type(self)(np.asarray(other, dtype=np.float64))

    @property
    def sum(self):
        raise AttributeError("ArrayTensor has no sum")
