// Odoo usage-log client — being written.
