"""The three stages of a deblur (hidd.deblur): estimate → sample → select.

    estimate(photos, cfg) → (model, evidence)                       hidd.stages.estimate
    sample(model, …) → (result, calibration)                         hidd.stages.sample
    select(photo, candidates, evidence) → (output, share, reason)    hidd.stages.select

Each works on each photo alone (hidd.stages.layout: how photos are laid out for the network), and none changes
what it is given.
"""
