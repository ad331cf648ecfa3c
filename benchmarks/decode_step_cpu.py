"""One cached decode step vs the same step without attention over the past (SmolLM2-135M shape, batch 32, 256
slots, fp32, random weights): how much of a decode step the KV cache costs. Prints ms/step and GFLOP/s.

    python benchmarks/decode_step_cpu.py
"""

import time, jax, jax.numpy as jnp, numpy as np
from s1jax.model.presets import preset_config
from s1jax.model.params import build_decoder, init_params
from s1jax.model.kv_cache import init_cache
c = preset_config("smollm2_135m")
p = init_params(c, param_dtype=jnp.float32)
m = build_decoder(c)
B,S=32,256
cache = init_cache(c,B,S,jnp.float32)
ids = jnp.ones((B,64),jnp.int32); pos=jnp.broadcast_to(jnp.arange(64),(B,64))
_, cache = jax.jit(lambda p,i,po,ca: m.apply({'params':p},i,po,cache=ca))(p,ids,pos,cache)
@jax.jit
def steps(p, cache, n):
    def body(i, carry):
        cache, tok = carry
        l, cache = m.apply({'params':p}, tok[:,None], jnp.full((B,1),64)+i, cache=cache)
        return cache, jnp.argmax(l[:,0],-1).astype(jnp.int32)
    return jax.lax.fori_loop(0, n, body, (cache, jnp.zeros((B,),jnp.int32)))
@jax.jit
def steps_nocache(p, n):
    def body(i, tok):
        l, _ = m.apply({'params':p}, tok[:,None], jnp.full((B,1),64)+i)
        return jnp.argmax(l[:,0],-1).astype(jnp.int32)
    return jax.lax.fori_loop(0, n, body, jnp.zeros((B,),jnp.int32))
for f,args in [(steps,(p,cache,20)),(steps_nocache,(p,20))]:
    jax.block_until_ready(f(*args)); t=time.time(); jax.block_until_ready(f(*args)); dt=(time.time()-t)/20
    print(f.__name__, f"{dt*1000:.1f} ms/step", f"{2*c.num_params*B/dt/1e9:.1f} GFLOP/s")
