"""Reading the user's code without glue: the call forms of a layer or a loss (``layer_loss``), of an optimizer
(``optimizer``) and of a whole network (``model``), which user array is which torch parameter (``mapping``),
where a user object keeps its arrays (``access``), and user code written in torch tensors or in JAX seen as
NumPy code (``torch_tensors``, ``jax_arrays``; a JAX function seen by ``check_function`` as a torch one)."""
